"""`scripts/evaluate.py`: several models and the baselines in one report; per-product errors; W&B; accelerate; any
conversational dataset scored by exact match and edit similarity beside its grey-image control."""

import json
import runpy
import sys

import datasets
import pytest
from PIL import Image

from phi3v.evaluation.results import write_results
from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue
from phi3v.tasks import build_task
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate
from phi3v.tasks.catalogue.metrics import answer_errors, score_catalogue
from phi3v.tasks.config import TaskConfig

from ..evaluation_helpers import REPO_ROOT, make_lora_adapter, one_torch_thread


LIMIT = 4
SYSTEMS = ["base", "base (grey image)", "lora", "lora (grey image)", "global median", "true-category median"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalogue") / "synthetic"
    make_synthetic_catalogue(path, num_products=60, seed=0)
    return path


@pytest.fixture(scope="module")
def adapter_dir(tiny_checkpoint, tmp_path_factory):
    return make_lora_adapter(tiny_checkpoint, tmp_path_factory.mktemp("adapter") / "lora")


def evaluate_args(catalogue, output_dir, *models: str) -> list[str]:
    return [
        "--dataset", str(catalogue), "--model", *models, "--output_dir", str(output_dir),
        "--limit", str(LIMIT), "--max_new_tokens", "8", "--batch_size", "3",
    ]  # fmt: skip


def run_evaluate(monkeypatch, args: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *args])
    monkeypatch.setenv("PHI3V_DEBUG", "1")  # a user error is raised here, not printed and exited (`run_script`)
    runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate.py"), run_name="__main__")


@pytest.fixture(scope="module")
def evaluation(catalogue, tiny_checkpoint, adapter_dir, tmp_path_factory):
    """One run comparing the base and its LoRA adapter, logged to W&B offline."""
    output_dir = tmp_path_factory.mktemp("evaluation") / "eval"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("WANDB_MODE", "offline")
        monkeypatch.setenv("WANDB_DIR", str(output_dir.parent))
        models = [f"base={tiny_checkpoint}", f"lora={adapter_dir}"]
        import wandb

        wandb.teardown()  # W&B reads WANDB_DIR once per process: another test's run in this worker may have set it
        try:
            run_evaluate(monkeypatch, [*evaluate_args(catalogue, output_dir, *models), "--report_to", "wandb"])
        finally:
            wandb.teardown()  # as this script's process would end: its settings must not reach the next run
    return output_dir


def test_one_report_with_a_column_per_model_and_baseline(evaluation):
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert list(metrics) == SYSTEMS
    assert all(m["num_samples"] == LIMIT for m in metrics.values())
    header = (evaluation / "report.md").read_text().split("| metric", 1)[1].splitlines()[0]
    assert [cell.strip() for cell in header.split("|")[1:-1]] == SYSTEMS
    plots = sorted(path.name for path in evaluation.glob("*.png"))
    assert plots == [f"price_scatter_{name}.png" for name in ["base", "base_grey_image", "lora", "lora_grey_image"]]
    # The same table, the plots and a gallery of every product (fewer than the cap) in report.html.
    page = (evaluation / "report.html").read_text()
    assert page.count('<div class="card">') == LIMIT and page.count("data:image/png;base64,") == len(plots)
    # Baselines predict prices only: n/a, not 0%, for the rest.
    assert metrics["global median"]["parse_rate"] is None and metrics["true-category median"]["title_anls"] is None


def test_predictions_have_one_line_per_product(evaluation, catalogue):
    test_split = datasets.load_from_disk(str(catalogue))["test"]
    lines = [json.loads(line) for line in (evaluation / "predictions.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == test_split["product_code"][:LIMIT]
    first, row = lines[0], test_split[0]
    assert first["truth"] == {key: row[key] for key in ("title", "category3_code", "full_price")}
    assert first["references"] == [AnswerTemplate(DEFAULT_ANSWER_TEMPLATE).render(row)]
    assert list(first["predictions"]) == SYSTEMS[:4]
    prediction = first["predictions"]["lora"]
    assert set(prediction) == {"answer", "parsed", "errors"}
    assert prediction["parsed"] == AnswerTemplate(DEFAULT_ANSWER_TEMPLATE).parse(prediction["answer"])


def test_wandb_offline_run_was_written(evaluation):
    runs = list((evaluation.parent / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_refuses_a_non_empty_output_dir_unless_overwrite(evaluation, catalogue, tiny_checkpoint, monkeypatch):
    args = evaluate_args(catalogue, evaluation, f"base={tiny_checkpoint}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_evaluate(monkeypatch, args)
    run_evaluate(monkeypatch, [*args, "--overwrite", "--no_blank_control"])
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert list(metrics) == ["base", "global median", "true-category median"]


def test_models_can_be_listed_or_repeated():
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate.py"))
    required = ["--dataset", "d", "--output_dir", "o"]
    listed = script["make_parser"]().parse([*required, "--model", "sft=a/sft", "b/dpo"])[0]
    repeated = script["make_parser"]().parse([*required, "--model", "sft=a/sft", "--model", "b/dpo"])[0]
    assert listed.model == repeated.model == ["sft=a/sft", "b/dpo"]
    assert script["parse_model_specs"](listed.model) == {"sft": "a/sft", "dpo": "b/dpo"}
    assert (
        listed.blank_control
        and not script["make_parser"]().parse([*required, "--model", "m", "--no_blank_control"])[0].blank_control
    )


def test_model_names_must_be_distinct(catalogue, tiny_checkpoint, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="duplicate"):
        run_evaluate(monkeypatch, evaluate_args(catalogue, tmp_path / "x", str(tiny_checkpoint), str(tiny_checkpoint)))


def test_per_product_errors_agree_with_the_metrics(tmp_path):
    rows = [
        {"product_code": "1", "title": "Red Check Scarf", "category3_code": "SCARVES", "full_price": 400.0},
        {"product_code": "2", "title": "Black Plain Wallet", "category3_code": "N.A.", "full_price": 450.0},
        {"product_code": "3", "title": "Navy Trench Coat", "category3_code": "TRENCH COATS", "full_price": 1990.0},
    ]
    answers = [
        "Product: Red Check Scarf, Category: SCARVES, Full Price: 390.00",
        "Product: Black Wallet, Category: N.A., Full Price: 1,450.00",
        "Category: COATS",
    ]
    template = AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)
    task = build_task(TaskConfig(task="catalogue"))
    items = [{"id": row["product_code"], "references": [template.render(row)], "truth": row} for row in rows]
    metrics = write_results(tmp_path, task, items, {"model": answers})["model"]
    parsed = [template.parse(answer) for answer in answers]
    assert metrics == score_catalogue(rows, parsed, template.fields)
    errors = [answer_errors(row, p, template.fields) for row, p in zip(rows, parsed, strict=True)]

    def mean(key: str) -> float:
        return sum(float(e[key]) for e in errors) / len(errors)

    assert metrics["category_accuracy"] == pytest.approx(mean("category_correct"))
    assert metrics["title_exact_match"] == pytest.approx(mean("title_exact_match"))
    assert metrics["title_anls"] == pytest.approx(mean("title_anls"))
    assert metrics["price_mae"] == pytest.approx(mean("price_abs_error"))
    assert metrics["price_mape"] == pytest.approx(mean("price_pct_error"))
    assert errors[2]["price_pct_error"] == 1.0  # no price read: scored as $0


@pytest.fixture(scope="module")
def conversations(tmp_path_factory):
    """A small TRL conversational dataset: two images and two turns, one image, and a text-only row."""
    red, blue = Image.new("RGB", (80, 60), (200, 0, 0)), Image.new("RGB", (60, 90), (0, 0, 200))
    rows = [
        {
            "images": [red, blue],
            "messages": [
                {"role": "user", "content": "<|image_1|><|image_2|>\nColours?"},
                {"role": "assistant", "content": "Red and blue."},
                {"role": "user", "content": "Which is taller?"},
                {"role": "assistant", "content": "The blue one."},
            ],
        },
        {
            "images": [red],
            "messages": [{"role": "user", "content": "<|image_1|>Colour?"}, {"role": "assistant", "content": "Red"}],
        },
        {"images": [], "messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]},
    ]
    path = tmp_path_factory.mktemp("conversations") / "data"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    return path


def test_a_conversational_dataset_is_scored_on_its_last_assistant_turns(
    conversations, tiny_checkpoint, tmp_path, monkeypatch
):
    output_dir = tmp_path / "eval"
    run_evaluate(monkeypatch, evaluate_args(conversations, output_dir, f"tiny={tiny_checkpoint}"))
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert list(metrics) == ["tiny", "tiny (grey image)"]
    assert set(metrics["tiny"]) == {"num_samples", "exact_match", "edit_similarity"}
    lines = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    assert [line["references"] for line in lines] == [["The blue one."], ["Red"], ["Hi."]]
    assert [line["prompt"] for line in lines] == ["Which is taller?", "<|image_1|>Colour?", "Say hi."]
    for line in lines:
        for prediction in line["predictions"].values():
            assert set(prediction["scores"]) == {"exact_match", "edit_similarity"}
    # A perfect answer scores 1 on both: the reference itself, through the writer.
    items = [{"id": "0", "prompt": [{"role": "user", "content": "?"}], "references": ["Red."]}]
    perfect = write_results(tmp_path / "perfect", build_task(TaskConfig()), items, {"m": [" red "]})["m"]
    assert perfect == {"num_samples": 1, "exact_match": 1.0, "edit_similarity": 1.0}


def test_the_task_config_saved_with_a_model_sets_the_template(catalogue, tiny_checkpoint, tmp_path, monkeypatch):
    """A model saved with a custom template is asked and scored with it, without a flag."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model_dir)
    # Trained on the conversational export of a catalogue: evaluated on the catalogue itself, whose layout is detected.
    TaskConfig("catalogue", "conversational", "Price?", "{title} costs ${full_price}").save(model_dir)
    output_dir = tmp_path / "eval"
    run_evaluate(monkeypatch, [*evaluate_args(catalogue, output_dir, f"m={model_dir}"), "--no_blank_control"])
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert "category_accuracy" not in metrics["m"] and "title_exact_match" in metrics["m"]
    assert "Answer template `{title} costs ${full_price}`" in (output_dir / "report.md").read_text()


@pytest.mark.parametrize(
    ("task", "source", "split"), [("docvqa", "docvqa_1200_examples", "test"), ("nlvr2", "the_cauldron/nlvr2", "train")]
)
def test_a_published_task_is_asked_and_scored_as_the_cookbook_does(
    task, source, split, tiny_checkpoint, tmp_path, monkeypatch
):
    from phi3v.fixtures.reproduction import make_reproduction_fixtures
    from phi3v.tasks import TASKS

    make_reproduction_fixtures(tmp_path / "fixtures", num_rows={"docvqa_test": 4, "nlvr2": 4})
    output_dir = tmp_path / "eval"
    args = ["--dataset", str(tmp_path / "fixtures" / source), "--split", f"{split}[:3]", "--task", task]
    run_evaluate(
        monkeypatch,
        [*args, "--model", f"tiny={tiny_checkpoint}", "--output_dir", str(output_dir), "--max_new_tokens", "6"],
    )
    metric = TASKS[task].metric
    lines = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    rows = datasets.load_from_disk(str(tmp_path / "fixtures" / source))[split].select(range(3))
    for line, row in zip(lines, rows, strict=True):
        item = TASKS[task].to_eval_item(row)
        assert line["references"] == item["references"] and line["prompt"] == item["prompt"][-1]["content"]
        prediction = line["predictions"]["tiny"]
        assert next(iter(prediction["scores"])) == metric.__name__
        assert prediction["scores"][metric.__name__] == metric(prediction["answer"], line["references"])
    metrics = json.loads((output_dir / "metrics.json").read_text())["tiny"]
    expected = sum(line["predictions"]["tiny"]["scores"][metric.__name__] for line in lines) / 3
    assert metrics[metric.__name__] == pytest.approx(expected)
