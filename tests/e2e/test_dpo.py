"""The DPO stage end to end on CPU, as a user runs its scripts: smoke SFT -> on-policy pairs -> smoke DPO -> one report
for SFT and DPO; and a DPO run that cannot beat its SFT model says so and saves its best checkpoint.

The scripts run in this process (`run_script_here`, as `python scripts/<script>` would): nothing here is about a
launcher or a separate process, and each interpreter spared is ~14 s of imports."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)

from ..conftest import built_once
from ..safety_helpers import run_script_here


def run(script: str, *args):
    """`python scripts/<script> args...`, in this process; it must succeed."""
    result = run_script_here(script, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="session")
def short_sft_and_pairs(tiny_checkpoint, synthetic_catalogue, tmp_path_factory):
    """A short smoke SFT, so the model answers in the right format but still makes mistakes, and its on-policy pairs;
    made once and shared by the pytest-xdist workers."""

    def train_then_pair(root: Path) -> None:
        sft, pairs = root / "sft", root / "pairs"
        run("sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", str(tiny_checkpoint), "--dataset_name",
            str(synthetic_catalogue), "--output_dir", str(sft), "--max_steps", "40", "--eval_strategy", "no",
            "--save_strategy", "no")  # fmt: skip
        run("make_preferences.py", "--dataset", str(synthetic_catalogue), "--model", str(sft), "--output",
            str(pairs))  # fmt: skip

    root = built_once(tmp_path_factory, "sft-and-pairs", train_then_pair)
    return root / "sft", root / "pairs"


def evaluations(history: list[dict], key: str) -> dict[int, float]:
    return {entry["step"]: entry[key] for entry in history if key in entry}


def test_smoke_sft_then_pairs_then_dpo_then_one_report(short_sft_and_pairs, synthetic_catalogue, tmp_path):
    catalogue = synthetic_catalogue
    (sft, pairs), dpo, report = short_sft_and_pairs, tmp_path / "dpo", tmp_path / "eval"

    # On-policy pairs: the SFT model's wrong answers are rejected; right ones fall back to hard negatives.
    manifest = json.loads((pairs / "manifest.json").read_text())
    train_pairs = datasets.load_from_disk(pairs)["train"]
    num_train = len(datasets.load_from_disk(catalogue)["train"])
    assert manifest["splits"]["train"]["pairs"] == len(train_pairs) == num_train
    assert sum(manifest["splits"]["train"]["pairs_per_kind"].values()) == num_train
    assert manifest["splits"]["train"]["pairs_per_kind"].get("on_policy", 0) > 0
    first = train_pairs[0]
    assert first["chosen"][0]["content"] != first["rejected"][0]["content"]

    # Smoke DPO from the SFT model, LoRA on top, reference = adapter disabled; evaluated on the validation pairs and
    # by the answers to the validation prompts at steps 0 (the SFT model), 8, 16 and 24.
    result = run("dpo.py", "recipes/smoke/dpo-lora.yaml", "--model_name_or_path", str(sft), "--dataset_name",
                 str(pairs), "--output_dir", str(dpo), "--max_steps", "24", "--logging_steps", "4",
                 "--per_device_train_batch_size", "4", "--eval_steps", "8", "--save_steps", "8")  # fmt: skip
    history = json.loads((dpo / "trainer_state.json").read_text())["log_history"]
    accuracies = [entry["rewards/accuracies"] for entry in history if "rewards/accuracies" in entry]
    margins = [entry["rewards/margins"] for entry in history if "rewards/margins" in entry]
    assert len(accuracies) == 6
    assert sum(accuracies[-2:]) / 2 > 0.5, accuracies
    assert margins[-1] > margins[0] and sum(margins[-2:]) > sum(margins[:2]), margins
    held_out_accuracy = evaluations(history, "eval_rewards/accuracies")
    price_mape = evaluations(history, "eval_price_mape")
    assert list(held_out_accuracy) == list(price_mape) == [0, 8, 16, 24]
    assert all(0 <= value <= 1 for value in held_out_accuracy.values())
    assert {"eval_rewards/margins", "eval_parse_rate", "eval_category_accuracy"} <= set(history[0])
    selection = json.loads((dpo / "selection.json").read_text())
    best_step = min((step for step in price_mape if step > 0), key=lambda step: (price_mape[step], step))
    assert selection["start_score"] == price_mape[0] and selection["saved_step"] == best_step
    assert selection["beats_start"] == (price_mape[best_step] < price_mape[0])
    assert selection["message"] in result.stdout and selection["message"] in (dpo / "README.md").read_text()

    # The output is a DPO adapter over the SFT model; it reloads and generates, and carries the SFT task config.
    assert json.loads((dpo / "adapter_config.json").read_text())["base_model_name_or_path"] == str(sft)
    assert json.loads((dpo / "phi3v_task.json").read_text()) == json.loads((sft / "phi3v_task.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(dpo)
    processor = AutoProcessor.from_pretrained(dpo)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": "<|image_1|>What is shown in this image?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = processor(prompt, [Image.new("RGB", (200, 160), (200, 30, 30))])
    assert model.generate(**inputs, max_new_tokens=8, do_sample=False).shape[1] > inputs["input_ids"].shape[1]

    # SFT and DPO side by side in one report, with the baselines.
    run("evaluate.py", "--dataset", str(catalogue), "--model", f"sft={sft}", f"dpo={dpo}",
        "--output_dir", str(report), "--no_blank_control")  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"sft", "dpo", "global median", "true-category median"} <= set(metrics)
    header = next(line for line in (report / "report.md").read_text().splitlines() if line.startswith("| metric"))
    assert [cell.strip() for cell in header.strip("|").split("|")][1:3] == ["sft", "dpo"]


@pytest.mark.parametrize("use_peft", [True, False], ids=["lora", "full"])
def test_dpo_that_cannot_beat_sft_says_so_and_saves_its_best_checkpoint_not_its_last(
    short_sft_and_pairs, tmp_path, use_peft
):
    from safetensors.torch import load_file

    (sft, pairs), dpo = short_sft_and_pairs, tmp_path / "dpo"
    # A learning rate that wrecks generation: no DPO checkpoint answers in the SFT model's form any more. Checkpoints
    # are chosen by the share of answers that parse; all of them are kept, to compare the saved weights with them.
    result = run("dpo.py", "recipes/smoke/dpo-lora.yaml", "--model_name_or_path", str(sft), "--dataset_name",
                 str(pairs), "--output_dir", str(dpo), "--learning_rate", "0.05", "--max_steps", "12",
                 "--per_device_train_batch_size", "4", "--eval_steps", "4", "--save_steps", "4",
                 "--save_total_limit", "5", "--metric_for_best_model", "eval_parse_rate",
                 "--greater_is_better", "true", "--use_peft", str(use_peft).lower())  # fmt: skip
    history = json.loads((dpo / "trainer_state.json").read_text())["log_history"]
    parse_rate = evaluations(history, "eval_parse_rate")
    assert list(parse_rate) == [0, 4, 8, 12] and max(parse_rate[4], parse_rate[8], parse_rate[12]) < parse_rate[0]
    best_step = max((4, 8, 12), key=lambda step: (parse_rate[step], -step))  # the first of equals is kept
    selection = json.loads((dpo / "selection.json").read_text())
    assert selection["beats_start"] is False and selection["saved_step"] == best_step
    assert selection["start_score"] == parse_rate[0] and selection["saved_score"] == parse_rate[best_step]
    assert "No checkpoint beat the SFT model" in result.stdout
    assert "No checkpoint beat the SFT model" in (dpo / "README.md").read_text()

    weights = "adapter_model.safetensors" if use_peft else "model.safetensors"
    saved = load_file(dpo / weights)
    best = load_file(dpo / f"checkpoint-{best_step}" / weights)
    last = load_file(dpo / "checkpoint-12" / weights)
    assert saved.keys() == best.keys() == last.keys()
    assert all(torch.equal(saved[name], best[name]) for name in saved)
    assert best_step != 12 and any(not torch.equal(saved[name], last[name]) for name in saved)
