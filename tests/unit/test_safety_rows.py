"""Every row checked before the model loads (issue 18, item 2): a bad row of any layout stops sft.py, dpo.py and
make_preferences.py with its split, row, field and problem and the total, before any model loads and with nothing
written; `--drop_invalid_rows` trains on the others and writes why beside the outputs; an evaluation skips a row it
cannot ask, says why, and scores the others."""

import io
import json

import datasets
import pytest
from PIL import Image

import phi3v.inference.loading
import phi3v.training
from phi3v.data.converters import from_docvqa, from_llava, from_the_cauldron
from phi3v.data.validation import check_splits, conversation_check, find_row_problems, preference_check
from phi3v.errors import BadRow, DataError
from phi3v.tasks.catalogue import to_conversation

from ..safety_helpers import output_of, run_script_here, tree_digest


MODEL_LOADS = "Loading weights"


def png() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), "red").save(buffer, "PNG")
    return {"bytes": buffer.getvalue(), "path": None}


USER, ANSWER = {"role": "user", "content": "What is it?"}, {"role": "assistant", "content": "A scarf."}
GOOD = {"images": [], "messages": [USER, ANSWER]}
CORRUPT = {"bytes": b"GIF89a-not-really", "path": None}

# (row, the field named, a piece of the problem): each rule of phi3v.data.row_checks, in TRL's `messages` layout.
# fmt: off
BAD_MESSAGES = {
    "assistant first": ({"messages": [ANSWER, USER, ANSWER]}, "messages[0].role", "an assistant turn comes first"),
    "LLaVA roles": ({"messages": [{"role": "human", "content": "Hi"}, ANSWER]}, "messages[0].role", "dataset_format: llava"),
    "unknown role": ({"messages": [{"role": "bot", "content": "Hi"}, ANSWER]}, "messages[0].role", "unknown role 'bot'"),
    "role missing": ({"messages": [{"content": "Hi"}, ANSWER]}, "messages[0].role", "missing"),
    "text None": ({"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}, ANSWER]}, "messages[0].content[0].text", "missing (None)"),
    "content int": ({"messages": [{"role": "user", "content": 3}, ANSWER]}, "messages[0].content", "got int"),
    "content dict": ({"messages": [{"role": "user", "content": {"text": "Hi"}}, ANSWER]}, "messages[0].content", "got dict"),
    "answer None": ({"messages": [USER, {"role": "assistant", "content": None}]}, "messages[1].content", "missing (None)"),
    "blank answer": ({"messages": [USER, {"role": "assistant", "content": " \n"}]}, "messages[1].content", "answer is empty"),
    "blank question": ({"messages": [{"role": "user", "content": "  "}, ANSWER]}, "messages[0].content", "question is empty"),
    "no answer": ({"messages": [USER]}, "messages[0].role", "no assistant turn"),
    "ends unanswered": ({"messages": [USER, ANSWER, USER]}, "messages[2].role", "ends with a user turn"),
    "two questions": ({"messages": [USER, USER, ANSWER]}, "messages[1].role", "where an assistant turn belongs"),
    "late system": ({"messages": [USER, ANSWER, {"role": "system", "content": "Be brief."}, USER, ANSWER]}, "messages[2].role", "system prompt comes first"),
    "messages a string": ({"messages": "Hi"}, "messages", "must be a list"),
    "no messages": ({"messages": []}, "messages", "no turns"),
    "message a list": ({"messages": [["user", "Hi"], ANSWER]}, "messages[0]", "mapping"),
    "audio part": ({"messages": [{"role": "user", "content": [{"type": "audio"}]}, ANSWER]}, "messages[0].content[0].type", "unsupported part type"),
    "chat token": ({"messages": [USER, {"role": "assistant", "content": "A<|end|>B"}]}, "messages[1].content", "'<|end|>'"),
    "LLaVA marker": ({"images": [png()], "messages": [{"role": "user", "content": "<image>\nHi"}, ANSWER]}, "messages[0].content", "`<image>` marker"),
    "malformed tag": ({"images": [png()], "messages": [{"role": "user", "content": "<|image|>Hi"}, ANSWER]}, "messages[0].content", "malformed image tag"),
    "tag past the images": ({"images": [png()], "messages": [{"role": "user", "content": "<|image_1|><|image_2|>Hi"}, ANSWER]}, "messages[0].content", "must be exactly <|image_1|>..<|image_1|>"),
    "tag twice": ({"images": [png()], "messages": [{"role": "user", "content": "<|image_1|>A<|image_1|>"}, ANSWER]}, "messages[0].content", "twice"),
    "tags out of order": ({"images": [png(), png()], "messages": [{"role": "user", "content": "<|image_2|><|image_1|>"}, ANSWER]}, "messages[0].content", "<|image_1|> comes next"),
    "image not named": ({"images": [png(), png()], "messages": [{"role": "user", "content": "<|image_1|>Hi"}, ANSWER]}, "images", "name 1 image(s)"),
    "more image parts than images": ({"images": [png()], "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}, ANSWER]}, "messages[0].content", "<|image_2|>"),
    "image in an answer": ({"images": [png()], "messages": [USER, {"role": "assistant", "content": "<|image_1|>"}]}, "messages[1].content", "answer names an image"),
    "image None": ({"images": [None], "messages": [USER, ANSWER]}, "images[0]", "image is missing"),
    "images a string": ({"images": "a.png", "messages": [USER, ANSWER]}, "images", "must be a list"),
    "image an int": ({"images": [3], "messages": [USER, ANSWER]}, "images[0]", "not an image"),
    "image a URL": ({"images": ["https://example.invalid/a.png"], "messages": [USER, ANSWER]}, "images[0]", "download nothing"),
    "unreadable image": ({"images": [CORRUPT], "messages": [USER, ANSWER]}, "images[0]", "cannot identify"),
    "missing image file": ({"images": ["/nonexistent/a.png"], "messages": [USER, ANSWER]}, "images[0]", "does not exist"),
    "plain-text prompt": ({"prompt": "Hi", "completion": [ANSWER]}, "prompt", "Wrap it"),
    "prompt ends answered": ({"prompt": [USER, ANSWER], "completion": [ANSWER]}, "prompt[1].role", "prompt must end with the user turn"),
    "empty completion": ({"prompt": [USER], "completion": []}, "completion", "no turns"),
    "completion asks": ({"prompt": [USER], "completion": [USER]}, "completion[0].role", "an assistant turn belongs"),
}
# fmt: on


@pytest.mark.parametrize("name", list(BAD_MESSAGES))
def test_each_rule_names_the_field_of_a_trl_row(name):
    row, field, problem = BAD_MESSAGES[name]
    with pytest.raises(BadRow) as error:
        conversation_check()({"images": [], **row})
    assert error.value.field == field and problem in error.value.problem, str(error.value)


CAULDRON = {"images": [png()], "texts": [{"user": "Is it red?", "assistant": "Yes."}]}
LLAVA = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
DOCVQA = {"image": png(), "query": {"en": "Total?"}, "answers": ["12"]}
PRODUCT = {"image": png(), "title": "Check Scarf", "category3_code": "SCARVES", "full_price": 590.0}
# fmt: off
BAD_LAYOUT_ROWS = {
    "cauldron answer None": (from_the_cauldron, {**CAULDRON, "texts": [{"user": "Q", "assistant": None}]}, "texts[0].assistant", "missing"),
    "cauldron blank answer": (from_the_cauldron, {**CAULDRON, "texts": [{"user": "Q", "assistant": ""}]}, "texts[0].assistant", "answer is empty"),
    "cauldron question int": (from_the_cauldron, {**CAULDRON, "texts": [{"user": 3, "assistant": "A"}]}, "texts[0].user", "got int"),
    "cauldron texts a dict": (from_the_cauldron, {**CAULDRON, "texts": {"user": "Q"}}, "texts", "must be a list"),
    "cauldron no texts": (from_the_cauldron, {**CAULDRON, "texts": []}, "texts", "no `texts`"),
    "cauldron image None": (from_the_cauldron, {**CAULDRON, "images": [None]}, "images[0]", "missing"),
    "cauldron corrupt image": (from_the_cauldron, {**CAULDRON, "images": [CORRUPT]}, "images[0]", "cannot identify"),
    "llava gpt first": (from_llava, {"conversations": [LLAVA["conversations"][1], *LLAVA["conversations"]]}, "conversations[0].from", "an assistant turn comes first"),
    "llava unknown speaker": (from_llava, {"conversations": [{"from": "bot", "value": "Hi"}]}, "conversations[0].from", "unknown `from`"),
    "llava value None": (from_llava, {"conversations": [{"from": "human", "value": None}, LLAVA["conversations"][1]]}, "conversations[0].value", "missing"),
    "llava markers without images": (from_llava, {"conversations": [{"from": "human", "value": "<image>\nHi"}, LLAVA["conversations"][1]]}, "conversations", "1 `<image>` tokens but 0 images"),
    "llava image an int": (from_llava, {**LLAVA, "image": 3}, "image", "must be a list"),
    "llava missing image": (from_llava, {**LLAVA, "image": "missing.jpg"}, "image", "not found"),
    "docvqa no answers": (from_docvqa, {**DOCVQA, "answers": []}, "answers", "no answers"),
    "docvqa answer None": (from_docvqa, {**DOCVQA, "answers": [None]}, "answers[0]", "missing"),
    "docvqa no English question": (from_docvqa, {**DOCVQA, "query": {"fr": "Total ?"}}, "query.en", "missing"),
    "docvqa image None": (from_docvqa, {**DOCVQA, "image": None}, "image", "missing"),
    "catalogue title None": (to_conversation, {**PRODUCT, "title": None}, "title", "missing"),
    "catalogue blank category": (to_conversation, {**PRODUCT, "category3_code": " "}, "category3_code", "empty"),
    "catalogue price a string": (to_conversation, {**PRODUCT, "full_price": "590"}, "full_price", "must be a number"),
    "catalogue negative price": (to_conversation, {**PRODUCT, "full_price": -1.0}, "full_price", "non-negative"),
    "catalogue corrupt photo": (to_conversation, {**PRODUCT, "image": CORRUPT}, "image", "cannot identify"),
}
# fmt: on


@pytest.mark.parametrize("name", list(BAD_LAYOUT_ROWS))
def test_each_layout_names_its_own_field(name):
    converter, row, field, problem = BAD_LAYOUT_ROWS[name]
    with pytest.raises(BadRow) as error:
        conversation_check(converter)(row)
    assert error.value.field == field and problem in error.value.problem, str(error.value)


def test_good_rows_of_every_layout_pass(tmp_path):
    for converter, row in [(None, GOOD), (from_the_cauldron, CAULDRON), (from_llava, LLAVA), (from_docvqa, DOCVQA),
                           (to_conversation, PRODUCT)]:  # fmt: skip
        conversation_check(converter)(row)
    structured = {"images": [png()], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "What is it?"}]},
        ANSWER, USER, ANSWER,
    ]}  # fmt: skip
    conversation_check()(structured)
    conversation_check()({"image": None, "prompt": [USER], "completion": [ANSWER]})


PAIR = {"images": [png()], "prompt": [USER], "chosen": [ANSWER], "rejected": [{"role": "assistant", "content": "Bag"}]}


@pytest.mark.parametrize(
    "change, field, problem",
    [
        ({"rejected": [ANSWER]}, "rejected", "same answer"),
        ({"rejected": [{"role": "assistant", "content": ""}]}, "rejected[0].content", "answer is empty"),
        ({"chosen": [USER]}, "chosen[0].role", "an assistant turn belongs"),
        ({"prompt": [USER, ANSWER]}, "prompt[1].role", "prompt must end with the user turn"),
        ({"rejected": None}, "rejected", "missing"),
        ({"images": [None]}, "images[0]", "missing"),
    ],
)
def test_preference_pairs_are_checked(change, field, problem):
    preference_check(PAIR)
    with pytest.raises(BadRow) as error:
        preference_check({**PAIR, **change})
    assert error.value.field == field and problem in error.value.problem, str(error.value)


def test_the_stop_lists_the_first_five_and_the_total_and_the_drop_keeps_the_others():
    rows = [GOOD] * 3 + [{"images": [], "messages": [ANSWER, USER, ANSWER]}] * 7
    split = datasets.Dataset.from_list(rows)
    with pytest.raises(DataError) as error:
        check_splits({"train": split}, conversation_check(), dataset_name="mine.jsonl")
    message = str(error.value)
    assert message.startswith("7 row(s) of mine.jsonl cannot be used:")
    assert "split 'train', row 3, field 'messages[0].role': an assistant turn comes first" in message
    assert "row 7," in message and "row 8," not in message and "... and 2 more" in message
    assert "--drop_invalid_rows" in message
    checked = check_splits({"train": split}, conversation_check(), drop=True)
    assert len(checked.splits["train"]) == 3 and checked.report()["rows_dropped"] == {"train": 7}
    with pytest.raises(DataError, match="No row of split 'bad'"):
        check_splits({"bad": split.select(range(3, 10))}, conversation_check(), drop=True)


def test_a_row_that_raises_anything_is_named_not_crashed_on():
    def converter(row):
        return row["missing"]

    problems = find_row_problems(datasets.Dataset.from_list([GOOD]), "test", converter)
    assert problems[0].row == 0 and problems[0].field == "(row)" and "KeyError" in problems[0].problem


# ---- the scripts


@pytest.fixture
def no_model(monkeypatch):
    """Any model or processor load fails the test: the data must be refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model loaded before the rows were checked")

    for name in ("load_model", "load_sft_model", "load_processor"):
        monkeypatch.setattr(phi3v.training, name, refuse)
    monkeypatch.setattr(phi3v.inference.loading, "load_for_inference", refuse)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sft(tiny_checkpoint, dataset, output_dir, *overrides):
    return run_script_here(
        "sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name", dataset,
        "--output_dir", output_dir, "--dataset_train_split", "train", "--eval_strategy", "no", "--max_steps", "1",
        *overrides,
    )  # fmt: skip


TEXT_ROWS = [{"messages": [{"role": "user", "content": f"Name {n}?"}, {"role": "assistant", "content": f"N{n}"}]}
             for n in range(6)]  # fmt: skip
BAD_FILES = {
    "messages": (
        [*TEXT_ROWS[:2], {"messages": [{"role": "human", "content": "Hi"}, {"role": "gpt", "content": "Yo"}]}],
        "split 'train', row 2, field 'messages[0].role': role 'human' is LLaVA's name for 'user'",
    ),
    "prompt-completion": (
        [{"prompt": [USER], "completion": [ANSWER]}, {"prompt": [USER], "completion": [{"role": "assistant", "content": None}]}],
        "split 'train', row 1, field 'completion[0].content': the content is missing (None)",
    ),
    "the_cauldron": (
        [{"images": [], "texts": [{"user": "Q", "assistant": "A"}]}, {"images": [], "texts": [{"user": "Q", "assistant": None}]}],
        "split 'train', row 1, field 'texts[0].assistant': the answer is missing (None)",
    ),
    "llava": (
        [LLAVA, {"conversations": [{"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Hi"}]}],
        "split 'train', row 1, field 'conversations[0].from': an assistant turn comes first",
    ),
}  # fmt: skip


@pytest.mark.parametrize("layout", list(BAD_FILES))
def test_sft_stops_on_a_bad_row_before_any_model_loads(layout, tiny_checkpoint, tmp_path, no_model):
    rows, expected = BAD_FILES[layout]
    (tmp_path / "data").mkdir()
    dataset = write_jsonl(tmp_path / "data" / "rows.jsonl", rows)
    before = tree_digest(tmp_path / "data")
    result = sft(tiny_checkpoint, dataset, tmp_path / "run")
    assert result.returncode == 1, output_of(result)[-2000:]
    assert f"error: 1 row(s) of {dataset} cannot be used:\n  {expected}" in output_of(result)
    assert "Traceback" not in output_of(result) and MODEL_LOADS not in output_of(result)
    assert tree_digest(tmp_path / "data") == before and not (tmp_path / "run").exists()


def test_grpo_stops_on_a_bad_row_before_any_model_loads(tiny_checkpoint, tmp_path, no_model):
    rows, expected = BAD_FILES["messages"]
    (tmp_path / "data").mkdir()
    dataset = write_jsonl(tmp_path / "data" / "rows.jsonl", rows)
    before = tree_digest(tmp_path / "data")
    result = run_script_here(
        "grpo.py", "recipes/smoke/grpo-lora.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name", dataset,
        "--output_dir", tmp_path / "run", "--dataset_train_split", "train", "--eval_strategy", "no",
        "--eval_on_start", "false", "--load_best_model_at_end", "false",
    )  # fmt: skip
    assert result.returncode == 1, output_of(result)[-2000:]
    assert f"error: 1 row(s) of {dataset} cannot be used:\n  {expected}" in output_of(result)
    assert "Traceback" not in output_of(result) and MODEL_LOADS not in output_of(result)
    assert tree_digest(tmp_path / "data") == before and not (tmp_path / "run").exists()


def test_sft_checks_the_validation_split_and_a_catalogue(tiny_checkpoint, synthetic_catalogue, tmp_path, no_model):
    rows = datasets.load_from_disk(str(synthetic_catalogue))
    validation = rows["validation"].select(range(4)).to_list()
    validation[2]["full_price"] = None
    features = rows["validation"].features
    splits = datasets.DatasetDict({"train": rows["train"].select(range(4)),
                                   "validation": datasets.Dataset.from_list(validation, features=features)})  # fmt: skip
    splits.save_to_disk(str(tmp_path / "catalogue"))
    before = tree_digest(tmp_path / "catalogue")
    result = sft(tiny_checkpoint, tmp_path / "catalogue", tmp_path / "run", "--eval_strategy", "steps")
    assert result.returncode == 1, output_of(result)[-2000:]
    assert "split 'validation', row 2, field 'full_price': the value is missing (None)" in output_of(result)
    assert tree_digest(tmp_path / "catalogue") == before and not (tmp_path / "run").exists()


def test_an_unreadable_data_file_is_a_data_error(tiny_checkpoint, tmp_path, no_model):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": [}\n')
    result = sft(tiny_checkpoint, broken, tmp_path / "run")
    assert result.returncode == 1 and "error: Cannot read the data file(s)" in output_of(result)
    assert "Traceback" not in output_of(result)


def test_dpo_stops_on_a_bad_pair_before_any_model_loads(tiny_checkpoint, tmp_path, no_model):
    pairs = [{**PAIR, "images": []}, {**PAIR, "images": [], "rejected": [ANSWER]}]
    dataset = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    result = run_script_here(
        "dpo.py", "recipes/smoke/dpo-lora.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name", dataset,
        "--dataset_train_split", "train", "--eval_strategy", "no", "--output_dir", tmp_path / "dpo",
        "--load_best_model_at_end", "false", "--eval_on_start", "false",
    )  # fmt: skip
    assert result.returncode == 1, output_of(result)[-2000:]
    assert "split 'train', row 1, field 'rejected': the same answer as `chosen`" in output_of(result)
    assert MODEL_LOADS not in output_of(result) and not (tmp_path / "dpo").exists()


def test_make_preferences_checks_the_catalogue_before_writing(synthetic_catalogue, tmp_path):
    rows = datasets.load_from_disk(str(synthetic_catalogue))
    train = rows["train"].select(range(6)).to_list()
    train[1]["title"] = "  "
    catalogue = datasets.DatasetDict({"train": datasets.Dataset.from_list(train, features=rows["train"].features)})
    catalogue.save_to_disk(str(tmp_path / "catalogue"))
    arguments = ["--dataset", tmp_path / "catalogue", "--splits", "train", "--output", tmp_path / "pairs"]
    result = run_script_here("make_preferences.py", *arguments)
    assert result.returncode == 1 and "split 'train', row 1, field 'title': the value is empty" in output_of(result)
    assert not (tmp_path / "pairs").exists()
    result = run_script_here("make_preferences.py", *arguments, "--drop_invalid_rows")
    assert result.returncode == 0, output_of(result)[-2000:]
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["pairs"] == 5
    assert manifest["dropped_rows"]["rows_dropped"] == {"train": 1}
    assert manifest["dropped_rows"]["dropped"][0] == {
        "split": "train", "row": 1, "field": "title", "problem": "the value is empty"
    }  # fmt: skip


def test_drop_invalid_rows_trains_on_the_others_and_reports_why(tiny_checkpoint, tmp_path):
    bad = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]},
           {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}, ANSWER]}]  # fmt: skip
    dataset = write_jsonl(tmp_path / "rows.jsonl", [*TEXT_ROWS, *bad])
    result = sft(tiny_checkpoint, dataset, tmp_path / "run", "--drop_invalid_rows", "true", "--save_strategy", "no")
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "Dropped 2 invalid row(s)" in output_of(result) and "(train: 2 of 8)" in output_of(result)
    report = json.loads((tmp_path / "run" / "dropped_rows.json").read_text())
    assert report["rows_checked"] == {"train": 8} and report["rows_dropped"] == {"train": 2}
    assert [(row["row"], row["field"]) for row in report["dropped"]] == [
        (6, "messages[1].content"), (7, "messages[0].content[0].text")
    ]  # fmt: skip
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_evaluation_skips_a_row_it_cannot_ask_and_scores_the_others(tiny_checkpoint, tmp_path):
    rows = [*TEXT_ROWS[:3], {"messages": [USER, {"role": "assistant", "content": None}]}]
    dataset = write_jsonl(tmp_path / "rows.jsonl", rows)
    result = run_script_here(
        "evaluate.py", "--dataset", dataset, "--split", "train", "--model", f"tiny={tiny_checkpoint}",
        "--output_dir", tmp_path / "eval", "--no_blank_control", "--max_new_tokens", "4", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "Skipping 1 of 4 rows that cannot be asked" in output_of(result)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["tiny"]["num_samples"] == 3
    skipped = json.loads((tmp_path / "eval" / "skipped_rows.json").read_text())
    assert skipped["skipped"] == [
        {"split": "train", "row": 3, "field": "messages[1].content", "problem": "the content is missing (None)"}
    ]
    assert "Skipped 1 of 4 rows" in (tmp_path / "eval" / "report.md").read_text()
    ids = [json.loads(line)["id"] for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert ids == ["0", "1", "2"]
