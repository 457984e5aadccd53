"""Two-process CPU runs of the smoke recipes under the repository's accelerate configs: SFT under DDP (`multi_gpu`)
and DeepSpeed ZeRO-3 (on DeepSpeed's CPU accelerator), and DPO under ZeRO-3. Each config is used as shipped except for
`use_cpu: true`, `mixed_precision: 'no'` and `num_processes: 2`. `zero2.yaml` takes the same launch as `zero3.yaml`
(accelerate's DeepSpeed launcher, torchrun) with only the stage's variables changed and parameters that are not
sharded, so ZeRO-3's run, sharded and gathered at save, stands for both here; the Cookbook's ZeRO-2 recipes run under
ZeRO-2 in tests/e2e/test_recipes_run.py. FSDP is not among them: accelerate enables it only on accelerators (on CPU
`fsdp.yaml` silently runs as DDP), so `test_fsdp.py` shards the model with torch's `fully_shard` directly, by the
units the config names.

The first DeepSpeed run on a machine compiles DeepSpeed's shared-memory communication op (about 2 minutes on 2
cores, cached in ~/.cache/torch_extensions); later runs take about 20 seconds each.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401

from ..recipe_runs import cpu_accelerate_config
from ..safety_helpers import run_script_here


REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.several_processes  # two ranks and their launcher


@pytest.mark.parametrize("config_name", ["multi_gpu", "zero3"])
def test_two_process_smoke_run(config_name, tiny_checkpoint, synthetic_catalogue, tmp_path):
    config_file = cpu_accelerate_config(config_name, tmp_path, num_processes=2, mixed_precision="no")
    output_dir = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    command += ["scripts/sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", str(tiny_checkpoint)]
    command += ["--dataset_name", str(synthetic_catalogue), "--output_dir", str(output_dir)]
    command += ["--max_steps", "3", "--logging_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    # Two processes of 8 rows: an epoch is ceil(rows / 16) steps (one process would take twice as many).
    results = json.loads((output_dir / "train_results.json").read_text())
    assert results["epoch"] == pytest.approx(3 / math.ceil(results["train_samples"] / 16))
    state = json.loads((output_dir / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 3 and all(0 < loss < 10 for loss in losses)

    # The saved model (gathered from the shards under ZeRO-3) reloads and runs.
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    processor = AutoProcessor.from_pretrained(output_dir)
    inputs = processor("<|user|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n")
    assert model.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] > inputs["input_ids"].shape[1]
    assert model.model.layers[0].self_attn.qkv_proj.weight.abs().sum() > 0


def test_two_process_zero3_dpo_saves_a_model_that_reloads(tiny_checkpoint, synthetic_catalogue, tmp_path):
    """DPO ends the way SFT does: `trainer.save_model` gathers the ZeRO-3 shards (here of the LoRA adapter)."""
    pairs = tmp_path / "pairs"  # made in this process: the pairs are the input here, the launch is what is tested
    made = run_script_here("make_preferences.py", "--dataset", synthetic_catalogue, "--output", pairs)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-5000:]
    config_file = cpu_accelerate_config("zero3", tmp_path, num_processes=2, mixed_precision="no")
    output_dir = tmp_path / "dpo"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    command += ["scripts/dpo.py", "recipes/smoke/dpo-lora.yaml", "--model_name_or_path", str(tiny_checkpoint)]
    command += ["--dataset_name", str(pairs), "--output_dir", str(output_dir), "--max_steps", "3"]
    command += ["--logging_steps", "1", "--per_device_train_batch_size", "2", "--dataset_test_split", "validation[:2]"]
    # Validation by DPO's loss alone: the generated answers' validation on every ZeRO-3 process is the mixin GRPO
    # shares, tested there (tests/e2e/test_grpo.py), where answers are 8 tokens instead of 64 ZeRO-3 forwards.
    command += ["--eval_generations", "0", "--metric_for_best_model", "eval_loss", "--greater_is_better", "false"]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert len([entry for entry in state["log_history"] if "rewards/accuracies" in entry]) == 3
    start = next(entry for entry in state["log_history"] if "eval_rewards/accuracies" in entry)
    assert start["step"] == 0 and start["eval_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference: log 2
    model = AutoModelForCausalLM.from_pretrained(output_dir)  # the base, then the gathered adapter
    lora_b = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(parameter.abs().sum() > 0 for parameter in lora_b)  # trained, not empty shards
    processor = AutoProcessor.from_pretrained(output_dir)
    inputs = processor("<|user|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n")
    assert model.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] > inputs["input_ids"].shape[1]
