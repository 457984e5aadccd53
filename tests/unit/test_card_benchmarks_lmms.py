"""Phi-3-V for lmms-eval, through lmms-eval's real task pipeline: its YAMLs, prompt functions, filters and metrics, on
fixtures of POPE, ChartQA, TextVQA and AI2D in their Hub layout loaded by lmms-eval's own dataset loading, offline.

These tests need lmms-eval, which lives in .venv-lmms (`make test-lmms` installs it and runs them); `make test` runs
in .venv, where they skip.
"""

import runpy
import sys

import pytest


pytest.importorskip("lmms_eval", reason="lmms-eval is not installed here: `make test-lmms` runs these tests")

from lmms_eval.api.model import lmms
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.models import get_model

from phi3v.card_benchmarks.lmms_model import Phi3VNative, cut_at_stops, generation_settings, to_phi3v_text
from phi3v.card_benchmarks.local_tasks import local_task_manager, task_yaml_paths, write_local_tasks
from phi3v.card_benchmarks.plugin import MODEL_NAME
from phi3v.card_benchmarks.runs import card_scores
from phi3v.errors import MissingPathError, UsageError
from phi3v.fixtures.card_benchmarks import make_benchmark_fixtures
from phi3v.inference.generation import generate_answers
from phi3v.modeling.chat_format import build_prompt

from ..evaluation_helpers import REPO_ROOT, make_lora_adapter


TASKS = ["pope", "chartqa", "textvqa_val", "ai2d"]
ROWS = 4


@pytest.fixture(scope="module")
def benchmark_data(tmp_path_factory):
    return make_benchmark_fixtures(tmp_path_factory.mktemp("benchmarks") / "data", rows=ROWS)


@pytest.fixture(scope="module")
def task_manager(benchmark_data, tmp_path_factory):
    return local_task_manager(write_local_tasks(TASKS, benchmark_data, tmp_path_factory.mktemp("tasks")), MODEL_NAME)


class ReferenceForHalf(lmms):
    """Answers the reference for the first half of each task's documents and `zzz` for the rest; the reference is
    what the fixture drew (AI2D's as the option letter lmms-eval's prompt asks for)."""

    def generate_until(self, requests):
        references = {
            "pope": lambda doc: doc["answer"],
            "chartqa": lambda doc: doc["answer"],
            "textvqa_val": lambda doc: doc["answers"][0],
            "ai2d": lambda doc: "ABCD"[int(doc["answer"])],
        }
        answers = []
        for request in requests:
            _, _, _, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            answers.append(references[task](doc) if doc_id < ROWS // 2 else "zzz")
        return answers

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def test_the_scores_are_lmms_evals_own(task_manager, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # TextVQA's aggregation writes a submission file into the working directory
    output = simple_evaluate(model=ReferenceForHalf(), tasks=TASKS, task_manager=task_manager, bootstrap_iters=0)
    results = output["results"]
    assert results["pope"]["pope_accuracy,none"] == 0.5
    assert results["chartqa"]["relaxed_overall,none"] == 0.5
    assert results["textvqa_val"]["exact_match,none"] == 0.5  # VQA accuracy: 9 matching annotators of 10 count 1
    assert results["ai2d"]["exact_match,flexible-extract"] == 0.5
    # lmms-eval's POPE F1 counts an answer that is neither "yes" nor "no" as neither positive nor negative: half
    # right and half "zzz" is a perfect F1 (an F1 that counted "zzz" as a wrong "no" would give 2/3).
    assert results["pope"]["pope_f1_score,none"] == 1.0
    assert card_scores(results, TASKS) == {"pope": 100.0, "chartqa": 50.0, "textvqa_val": 50.0, "ai2d": 50.0}


def test_phi3v_native_is_registered_through_the_entry_point():
    assert get_model(MODEL_NAME) is Phi3VNative


def test_lmms_evals_command_line_runs_phi3v_native(tiny_checkpoint, benchmark_data, tmp_path, monkeypatch, capsys):
    # lmms-eval's built-in `pope` wins over an included task of the same name, so the command line gets a renamed one
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "pope_fixture.yaml").write_text(
        f"include: {task_yaml_paths(['pope'])['pope']}\ntask: pope_fixture\n"
        f"dataset_path: {benchmark_data / 'lmms-lab-encoder' / 'POPE'}\n"
        f"dataset_kwargs:\n  cache_dir: {tmp_path / 'cache'}\n"
    )
    model_args = f"pretrained={tiny_checkpoint},num_crops=1,device=cpu"
    argv = ["--model", MODEL_NAME, "--model_args", model_args, "--tasks", "pope_fixture", "--limit", "2"]
    argv += ["--include_path", str(tmp_path / "tasks"), "--output_path", str(tmp_path / "out"), "--batch_size", "2"]
    monkeypatch.setattr(sys, "argv", ["lmms_eval", *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("lmms_eval", run_name="__main__")
    assert exit_info.value.code == 0
    assert "|pope_fixture|none  |     0|pope_accuracy |" in capsys.readouterr().out


def test_tiny_model_answers_lmms_evals_prompts_in_batches(tiny_checkpoint, task_manager, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = Phi3VNative(str(tiny_checkpoint), batch_size=3, num_crops=1, device="cpu")
    phi3v, processor = model.model, model.processor  # lmms-eval's `clean()` drops the model once it is done
    output = simple_evaluate(
        model=model,
        tasks=["pope", "ai2d"],
        task_manager=task_manager,
        gen_kwargs="max_new_tokens=6",
        bootstrap_iters=0,
    )
    samples = output["samples"]["pope"]
    contexts = [sample["arguments"][0] for sample in samples]
    assert all(context.endswith("\nAnswer the question using a single word or phrase.") for context in contexts)
    docs = [model.task_dict["pope"]["test"][sample["doc_id"]] for sample in samples]
    alone = [
        generate_answers(
            phi3v,
            processor,
            [build_prompt(processor, [{"role": "user", "content": "<|image_1|>\n" + context}])],
            [[doc["image"].convert("RGB")]],
            max_new_tokens=6,
            num_crops=1,
            show_progress=False,
        )[0]
        for context, doc in zip(contexts, docs, strict=True)
    ]
    assert [sample["resps"][0][0] for sample in samples] == [cut_at_stops(answer, ["\n\n"]) for answer in alone]
    assert 0.0 <= output["results"]["ai2d"]["exact_match,flexible-extract"] <= 1.0


def test_prompts_place_the_images_as_lmms_evals_phi3v_does():
    assert to_phi3v_text("Which is bigger?", 1) == "<|image_1|>\nWhich is bigger?"
    assert to_phi3v_text("<image> left, <image> right: same?", 2) == "<|image_1|> left, <|image_2|> right: same?"
    # MMMU names an image once per mention: tags in front when the mentions and the images do not pair up
    assert to_phi3v_text("<image> and <image> again", 1) == "<|image_1|>\nand  again"
    assert to_phi3v_text("No picture.", 0) == "No picture."


def test_generation_settings_are_greedy_with_stops():
    assert generation_settings("pope", {"max_new_tokens": 128, "temperature": 0, "top_p": 1.0, "until": "\n\n"}) == (
        128,
        ["\n\n"],
    )
    assert generation_settings("textvqa_val", {"until": ["ASSISTANT:"]}) == (1024, ["ASSISTANT:"])
    with pytest.raises(UsageError, match="temperature=0.7"):
        generation_settings("x", {"temperature": 0.7})
    with pytest.raises(UsageError, match=r"\['image_aspect_ratio'\]"):
        generation_settings("x", {"image_aspect_ratio": "pad"})
    assert cut_at_stops("yes\n\nBecause", ["\n\n", "ASSISTANT:"]) == "yes"


def test_a_missing_local_dataset_is_named(tmp_path):
    with pytest.raises(MissingPathError, match="lmms-lab-encoder/POPE"):
        write_local_tasks(["pope"], tmp_path, tmp_path / "tasks")
    with pytest.raises(UsageError, match="not a task of lmms-eval"):
        write_local_tasks(["mathvista_testmini"], tmp_path, tmp_path / "tasks")  # a group, not a task


def test_forgetting_report_of_a_lora_adapter(tiny_checkpoint, benchmark_data, tmp_path, monkeypatch):
    adapter = make_lora_adapter(tiny_checkpoint, tmp_path / "adapter")
    flags = ["--base", str(tiny_checkpoint), "--fine_tuned", f"lora={adapter}", "--tasks", "pope", "ai2d"]
    flags += ["--data_dir", str(benchmark_data), "--limit", "2", "--num_crops", "1", "--device", "cpu"]
    flags += ["--card", "phi-3-vision-128k-instruct", "--output_dir", str(tmp_path / "report")]
    monkeypatch.setattr(sys, "argv", ["scripts/forgetting.py", *flags])
    runpy.run_path(str(REPO_ROOT / "scripts" / "forgetting.py"), run_name="__main__")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| benchmark | card | base | base - card | within +-1.5 | lora | lora - base |" in report
    assert "| POPE (test) | 85.8 |" in report and "| AI2D (test) | 76.7 |" in report
    assert "- not judged: --limit 2: not the whole split" in report
    assert (tmp_path / "report" / "lmms_eval" / "lora" / "results.json").is_file()
