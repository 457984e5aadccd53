"""`scripts/grpo.py` as a user launches it: two CPU processes under DeepSpeed ZeRO-3 (sampling with the gathered
weights, the validation answers generated on every process, the adapter gathered at save time), and every GRPO recipe
as shipped for 2 steps (the tiny model saved as an SFT output instead of the checkpoint, a fixture in the recipe's
layout, `use_cpu`, sdpa for flash-attention, the one process its launch would start, in this process), as
`tests/e2e/test_recipes_run.py` runs the others."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor
from trl import GRPOConfig, TrlParser

import phi3v  # noqa: F401
from phi3v.inference.generation import answer_items
from phi3v.tasks.config import TaskConfig
from phi3v.training import Phi3VGRPOScriptArguments, Phi3VModelConfig, parse_recipe

from ..recipe_runs import cpu_accelerate_config, make_fixture, run_as_launched


REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes"
GRPO_RECIPES = sorted(RECIPES.rglob("grpo-*.yaml"))


def sft_output(tiny_checkpoint: Path, path: Path, task: str) -> Path:
    """The tiny model as an SFT output trained for `task` (its `phi3v_task.json`)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    model.save_pretrained(path)
    AutoProcessor.from_pretrained(tiny_checkpoint).save_pretrained(path)
    TaskConfig(task=task, dataset_format="catalogue" if task == "catalogue" else "auto").save(path)
    return path


def rewards_logged(output_dir: Path) -> tuple[list[dict], list[dict]]:
    """The training and evaluation entries of a finished run's log."""
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [e for e in history if "reward" in e], [e for e in history if "eval_reward" in e]


@pytest.mark.several_processes
def test_two_process_zero3_grpo_saves_an_adapter_that_reloads_and_answers(
    tiny_checkpoint, synthetic_catalogue, tmp_path
):
    config_file = cpu_accelerate_config("zero3", tmp_path, num_processes=2, mixed_precision="no")
    start, output_dir = sft_output(tiny_checkpoint, tmp_path / "sft", "catalogue"), tmp_path / "grpo"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    command += ["scripts/grpo.py", "recipes/smoke/grpo-lora.yaml", "--model_name_or_path", str(start)]
    command += ["--dataset_name", str(synthetic_catalogue), "--output_dir", str(output_dir), "--max_steps", "3"]
    command += ["--logging_steps", "1", "--eval_steps", "3", "--save_steps", "3", "--max_completion_length", "8"]
    # Two validation prompts: every process answers both (ZeRO-3 needs every process in each forward), 8 tokens each.
    command += ["--per_device_train_batch_size", "8", "--num_generations", "4", "--eval_generations", "2"]
    command += ["--dataset_test_split", "validation[:2]", "--per_device_eval_batch_size", "2"]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    training, evaluations = rewards_logged(output_dir)
    assert len(training) == 3 and all(f"rewards/{name}/mean" in training[0] for name in ("format", "price"))
    assert [e["step"] for e in evaluations] == [0, 3] and "eval_price_mape" in evaluations[0]
    assert json.loads((output_dir / "selection.json").read_text())["start_score"] is not None

    model = AutoModelForCausalLM.from_pretrained(output_dir)  # the SFT output, then the gathered adapter
    lora_b = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(parameter.abs().sum() > 0 for parameter in lora_b)  # trained, not empty shards
    processor = AutoProcessor.from_pretrained(output_dir)
    item = {"images": [Image.new("RGB", (64, 64), "red")], "prompt": [{"role": "user", "content": "<|image_1|>Hi"}]}
    assert isinstance(answer_items(model, processor, [item], 1, 4)[0], str)


@pytest.mark.parametrize("recipe", GRPO_RECIPES, ids=lambda path: path.relative_to(RECIPES).as_posix())
def test_grpo_recipe_runs_as_shipped(recipe, tiny_checkpoint, tmp_path):
    parser = TrlParser((Phi3VGRPOScriptArguments, GRPOConfig, Phi3VModelConfig))
    script_args, training_args, model_args = parse_recipe(parser, [str(recipe), "--use_cpu", "true"])
    prompts_per_step = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    dataset, split_flags = make_fixture(recipe, script_args, training_args, tmp_path, prompts_per_step)
    start = sft_output(tiny_checkpoint, tmp_path / "sft", script_args.task or "catalogue")
    output_dir = tmp_path / "run"
    overrides = [
        *("--model_name_or_path", str(start), "--dataset_name", str(dataset), *split_flags),
        *("--use_cpu", "true", "--max_steps", "2", "--output_dir", str(output_dir), "--logging_steps", "1"),
    ]
    if model_args.attn_implementation == "flash_attention_2":
        overrides += ["--attn_implementation", "sdpa"]
    # The one process the launch would start, here, as tests/recipe_runs.py runs the others.
    result = run_as_launched(recipe, ["scripts/grpo.py", str(recipe), *overrides], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    training, evaluations = rewards_logged(output_dir)
    for name in script_args.reward_funcs:
        assert all(f"rewards/{name}/mean" in entry for entry in training), name
    assert evaluations[0]["step"] == 0 and training_args.metric_for_best_model in evaluations[0]
    assert (output_dir / "adapter_model.safetensors").is_file() and (output_dir / "selection.json").is_file()
