"""Two CPU processes launched as a user launches them, with the repository's accelerate configs as shipped except for
`use_cpu: true`, `mixed_precision: 'no'` and `num_processes: 2`:

- `multi_gpu` (DDP through torchrun): SFT of the smoke recipe, then `scripts/evaluate.py` on its output (each process
  answers half the products; the gathered answers equal one process's), then the FSDP2 checks of
  `tests/fsdp_worker.py`. accelerate enables FSDP only on accelerators (on CPU `fsdp.yaml` silently runs as DDP), so
  the worker shards the tiny model with torch's `fully_shard` directly, by the units `fsdp.yaml` names.
- `zero3` (DeepSpeed ZeRO-3 through torchrun, on DeepSpeed's CPU accelerator): SFT, then GRPO and DPO from its output,
  each saving a model gathered from the shards. `zero2.yaml` takes the same launch with only the stage's variables
  changed and parameters that are not sharded, so ZeRO-3 stands for both here; the Cookbook's ZeRO-2 recipes run
  under ZeRO-2 in tests/e2e/test_recipes_run.py.

Each config is launched once and its scripts run one after another in the two processes it starts
(`tests/run_in_sequence.py`): a launch costs three interpreters importing torch, transformers and TRL (~30 CPU
seconds here) before any script runs. The first script of each runs exactly as launched; one that fails stops the
launch and fails the test, which names it.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401
from phi3v.inference.generation import answer_items

from ..recipe_runs import cpu_accelerate_config
from ..safety_helpers import run_script_here
from ..unit.test_evaluate import LIMIT, evaluate_args, run_evaluate
from .test_grpo import rewards_logged


REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.several_processes  # two ranks and their launcher


def launch(config_file: Path, *runs: list[str]) -> str:
    """`accelerate launch --config_file CONFIG_FILE tests/run_in_sequence.py RUN --then RUN ...`, asserted to succeed;
    its standard output."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    command += ["tests/run_in_sequence.py"]
    for number, run in enumerate(runs):
        command += [*(["--then"] if number else []), *map(str, run)]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result.stdout


def smoke_sft(tiny_checkpoint: Path, catalogue: Path, output_dir: Path) -> list[str]:
    """3 steps of the smoke SFT recipe, logged at each."""
    return [
        *("scripts/sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint),
        *("--dataset_name", catalogue, "--output_dir", output_dir, "--max_steps", "3", "--logging_steps", "1"),
        *("--eval_strategy", "no", "--save_strategy", "no"),
    ]


def check_sft(output_dir: Path) -> None:
    # Two processes of 8 rows: an epoch is ceil(rows / 16) steps (one process would take twice as many).
    results = json.loads((output_dir / "train_results.json").read_text())
    assert results["epoch"] == pytest.approx(3 / math.ceil(results["train_samples"] / 16))
    state = json.loads((output_dir / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 3 and all(0 < loss < 10 for loss in losses)
    # The saved model (gathered from the shards under ZeRO-3) reloads and runs.
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    assert model.model.layers[0].self_attn.qkv_proj.weight.abs().sum() > 0
    check_generates(model, output_dir)


def check_generates(model, output_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(output_dir)
    inputs = processor("<|user|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n")
    assert model.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] > inputs["input_ids"].shape[1]


def trained_adapter(output_dir: Path):
    """The saved model (the SFT output, then the gathered adapter), checked to hold a trained, not empty, adapter."""
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    lora_b = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(parameter.abs().sum() > 0 for parameter in lora_b)  # trained, not empty shards
    return model


def test_ddp_trains_evaluates_like_one_process_and_fsdp_shards(
    tiny_checkpoint, synthetic_catalogue, tmp_path, monkeypatch
):
    config_file = cpu_accelerate_config("multi_gpu", tmp_path, num_processes=2, mixed_precision="no")
    sft = tmp_path / "sft"
    evaluation = evaluate_args(synthetic_catalogue, tmp_path / "two", f"sft={sft}") + ["--no_blank_control"]
    fsdp = ["tests/fsdp_worker.py", tiny_checkpoint, tmp_path / "fsdp"]
    sft_run = smoke_sft(tiny_checkpoint, synthetic_catalogue, sft)
    stdout = launch(config_file, sft_run, ["scripts/evaluate.py", *evaluation], fsdp)
    assert "parallelism: DDP on 2 GPUs (accelerate launch environment)" in stdout, stdout[-3000:]  # SFT's plan

    check_sft(sft)

    # Each process answered half the products; the gathered file is the one a single process writes.
    run_evaluate(
        monkeypatch, evaluate_args(synthetic_catalogue, tmp_path / "one", f"sft={sft}") + ["--no_blank_control"]
    )
    one, two = ((tmp_path / name / "predictions.jsonl").read_text() for name in ("one", "two"))
    assert one == two and len(two.splitlines()) == LIMIT

    # FSDP2: 2 decoder layers + 2 CLIP encoder layers sharded; every trainable parameter's gradient was compared.
    summary = json.loads((tmp_path / "fsdp" / "summary.json").read_text())
    assert summary["units"] == 4
    assert summary["gradients_compared"] > 30 and summary["lora_gradients_compared"] == summary["lora_parameters"] > 0
    assert (tmp_path / "fsdp" / "full" / "model.safetensors").exists()


def test_zero3_trains_then_grpo_and_dpo_save_gathered_adapters(tiny_checkpoint, synthetic_catalogue, tmp_path):
    pairs = tmp_path / "pairs"  # made in this process: the pairs are the input here, the launch is what is tested
    made = run_script_here("make_preferences.py", "--dataset", synthetic_catalogue, "--output", pairs)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-5000:]
    config_file = cpu_accelerate_config("zero3", tmp_path, num_processes=2, mixed_precision="no")
    sft, grpo, dpo = tmp_path / "sft", tmp_path / "grpo", tmp_path / "dpo"
    grpo_run = [
        *("scripts/grpo.py", "recipes/smoke/grpo-lora.yaml", "--model_name_or_path", sft),
        *("--dataset_name", synthetic_catalogue, "--output_dir", grpo, "--max_steps", "3", "--logging_steps", "1"),
        *("--eval_steps", "3", "--save_steps", "3", "--max_completion_length", "8"),
        # Two validation prompts: every process answers both (ZeRO-3 needs every process in each forward).
        *("--per_device_train_batch_size", "8", "--num_generations", "4", "--eval_generations", "2"),
        *("--dataset_test_split", "validation[:2]", "--per_device_eval_batch_size", "2"),
    ]
    dpo_run = [
        *("scripts/dpo.py", "recipes/smoke/dpo-lora.yaml", "--model_name_or_path", sft, "--dataset_name", pairs),
        *("--output_dir", dpo, "--max_steps", "3", "--logging_steps", "1", "--per_device_train_batch_size", "2"),
        # Validation by DPO's loss alone: the generated answers' validation on every ZeRO-3 process is the mixin GRPO
        # shares, run above.
        *("--dataset_test_split", "validation[:2]", "--eval_generations", "0"),
        *("--metric_for_best_model", "eval_loss", "--greater_is_better", "false"),
    ]
    stdout = launch(config_file, smoke_sft(tiny_checkpoint, synthetic_catalogue, sft), grpo_run, dpo_run)
    # The plans of SFT and DPO (GRPO prints none): each run found the launch's DeepSpeed environment.
    assert stdout.count("parallelism: DeepSpeed ZeRO-3 on 2 GPUs (accelerate launch environment)") == 2, stdout[-3000:]

    check_sft(sft)

    training, evaluations = rewards_logged(grpo)
    assert len(training) == 3 and all(f"rewards/{name}/mean" in training[0] for name in ("format", "price"))
    assert [e["step"] for e in evaluations] == [0, 3] and "eval_price_mape" in evaluations[0]
    assert json.loads((grpo / "selection.json").read_text())["start_score"] is not None
    model = trained_adapter(grpo)
    processor = AutoProcessor.from_pretrained(grpo)
    item = {"images": [Image.new("RGB", (64, 64), "red")], "prompt": [{"role": "user", "content": "<|image_1|>Hi"}]}
    assert isinstance(answer_items(model, processor, [item], 1, 4)[0], str)

    history = json.loads((dpo / "trainer_state.json").read_text())["log_history"]
    assert len([entry for entry in history if "rewards/accuracies" in entry]) == 3
    start = next(entry for entry in history if "eval_rewards/accuracies" in entry)
    assert start["step"] == 0 and start["eval_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference: log 2
    check_generates(trained_adapter(dpo), dpo)
