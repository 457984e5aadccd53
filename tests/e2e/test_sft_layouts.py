"""A custom answer template trains, evaluates and builds DPO pairs with its own answers (`scripts/sft.py`,
`evaluate.py`, `make_preferences.py` as a user runs them, in this process: `run_script_here`)."""

import json

import datasets

import phi3v  # noqa: F401
from phi3v.tasks.catalogue import AnswerTemplate

from ..safety_helpers import run_script_here


CUSTOM_TEMPLATE = "{title} | {category3_code} | ${full_price}"


def run(script: str, *args):
    """`python scripts/<script> args...`, in this process (~14 s of imports spared each); it must succeed."""
    result = run_script_here(script, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_a_custom_template_trains_evaluates_and_builds_pairs(synthetic_catalogue, tiny_checkpoint, tmp_path):
    sft, report, pairs = tmp_path / "sft", tmp_path / "eval", tmp_path / "pairs"
    run("sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", str(tiny_checkpoint),
        "--dataset_name", str(synthetic_catalogue), "--output_dir", str(sft), "--answer_template", CUSTOM_TEMPLATE,
        "--max_steps", "180", "--eval_strategy", "no", "--save_strategy", "no")  # fmt: skip
    assert json.loads((sft / "phi3v_task.json").read_text())["answer_template"] == CUSTOM_TEMPLATE

    # No template flag: evaluate.py reads it from the model.
    run("evaluate.py", "--dataset", str(synthetic_catalogue), "--model", f"custom={sft}", "--output_dir",
        str(report), "--max_new_tokens", "32", "--no_blank_control")  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())["custom"]
    assert metrics["parse_rate"] > 0.5 and metrics["category_accuracy"] > 0.3, metrics
    assert metrics["price_within_25pct"] > 0.2, metrics
    line = json.loads((report / "predictions.jsonl").read_text().splitlines()[0])
    assert " | " in line["predictions"]["custom"]["answer"]

    run("make_preferences.py", "--dataset", str(synthetic_catalogue), "--model", str(sft), "--output",
        str(pairs), "--max_new_tokens", "32")  # fmt: skip
    manifest = json.loads((pairs / "manifest.json").read_text())
    assert manifest["answer_template"] == CUSTOM_TEMPLATE
    train_pairs = datasets.load_from_disk(str(pairs))["train"]
    template = AnswerTemplate(CUSTOM_TEMPLATE)
    catalogue = datasets.load_from_disk(str(synthetic_catalogue))["train"]
    assert train_pairs[0]["chosen"][0]["content"] == template.render(catalogue[0])
    # Right answers are recognised through the custom template: not every pair is on-policy.
    kinds = manifest["splits"]["train"]["pairs_per_kind"]
    assert sum(kinds.values()) == len(catalogue) and kinds.get("on_policy", 0) < len(catalogue), kinds
