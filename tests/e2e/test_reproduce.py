"""scripts/reproduce.py on the tiny model and the offline fixtures: a trainer that cannot be built stops before the base
evaluation, and a published row runs end to end (the report shows the Cookbook score before and after training).
Its refusals before any work: tests/unit/test_reproduce.py.

reproduce.py and the steps it runs (`python scripts/sft.py ...`, `python scripts/evaluate.py ...`, the commands it
builds) run in this process (`run_script_here`, `steps_in_this_process`): each interpreter spared is ~14 s of imports,
and nothing here is about the processes themselves."""

import json

import pytest

from phi3v.fixtures.reproduction import make_reproduction_fixtures

from ..safety_helpers import output_of, run_script_here, steps_in_this_process
from ..unit.test_reproduce import TINY_CPU


def reproduce(*args):
    """`python scripts/reproduce.py args...`: its output includes that of the steps it runs, as a terminal's would."""
    with steps_in_this_process():
        return run_script_here("reproduce.py", *args)


def test_a_trainer_that_cannot_be_built_stops_before_the_base_evaluation(tmp_path, tiny_checkpoint):
    fixtures = tmp_path / "fixtures"
    make_reproduction_fixtures(fixtures, num_rows={"hateful_memes": 24})
    data = fixtures / "the_cauldron" / "hateful_memes"
    report_dir, output_dir = tmp_path / "report", tmp_path / "model"
    result = reproduce(
        "recipes/cookbook/hateful-memes/sft-lora.yaml",
        *("--report_dir", report_dir, "--eval_dataset", data, "--eval_split", "train[:8]"),
        *("--model_name_or_path", tiny_checkpoint, "--dataset_name", data, "--dataset_train_split", "train[8:]"),
        *TINY_CPU,
        *("--lora_dropout", "0.1", "--output_dir", output_dir),  # dropout on the adapted lm_head cannot train
    )
    assert result.returncode != 0 and "lm_head" in result.stderr and "--check_only true" in result.stdout
    assert not (report_dir / "before").exists() and not output_dir.exists()  # no evaluation spent, nothing written


def test_hateful_memes_row_on_the_fixtures(tmp_path, tiny_checkpoint):
    fixtures = tmp_path / "fixtures"
    make_reproduction_fixtures(fixtures, num_rows={"hateful_memes": 96})
    data = fixtures / "the_cauldron" / "hateful_memes"
    report_dir = tmp_path / "report"
    result = reproduce(
        "recipes/cookbook/hateful-memes/sft-full.yaml",
        *("--report_dir", report_dir, "--eval_dataset", data, "--eval_split", "train[:32]"),
        *("--model_name_or_path", tiny_checkpoint, "--dataset_name", data, "--dataset_train_split", "train[32:]"),
        *TINY_CPU,
        *("--num_train_epochs", "12", "--output_dir", tmp_path / "model"),
    )
    assert result.returncode == 0, output_of(result)[-5000:]
    summary = json.loads((report_dir / "reproduction.json").read_text())
    assert summary["num_items"] == 32 and summary["published"] == 86.4
    assert summary["verdict"] == "not applicable" and summary["within_tolerance"] is None  # as report.md says
    assert summary["before"] < summary["after"]  # the untrained tiny model answers noise; the fixture is learnable
    items = [json.loads(line) for line in (report_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(items) == 32 and items[0]["prompt"] == "<|image_1|>\nIs this meme hateful? Answer yes or no."
    assert sum(item["after"]["score"] for item in items) == pytest.approx(summary["after"] * 32 / 100)
    report = (report_dir / "report.md").read_text()
    assert "does not apply" in report and f"| {summary['before']:.2f} | {summary['after']:.2f} | 86.4 |" in report
