"""Every GRPO recipe as shipped, for 2 steps of at most 2 micro-batches (the tiny model saved as an SFT output
instead of the checkpoint, a fixture in the recipe's layout, `use_cpu`, sdpa for flash-attention, the one process its
launch would start, in this process), as `tests/e2e/test_recipes_run.py` runs the others. `scripts/grpo.py` on two
processes under DeepSpeed ZeRO-3 (sampling with the gathered weights, the validation answers generated on every
process, the adapter gathered at save time): tests/e2e/test_two_processes.py."""

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoProcessor
from trl import GRPOConfig, TrlParser

import phi3v  # noqa: F401
from phi3v.tasks.config import TaskConfig
from phi3v.training import Phi3VGRPOScriptArguments, Phi3VModelConfig, parse_recipe

from ..recipe_runs import ACCUMULATION, make_fixture, run_as_launched


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


@pytest.mark.parametrize("recipe", GRPO_RECIPES, ids=lambda path: path.relative_to(RECIPES).as_posix())
def test_grpo_recipe_runs_as_shipped(recipe, tiny_checkpoint, tmp_path):
    parser = TrlParser((Phi3VGRPOScriptArguments, GRPOConfig, Phi3VModelConfig))
    script_args, training_args, model_args = parse_recipe(parser, [str(recipe), "--use_cpu", "true"])
    accumulation = min(training_args.gradient_accumulation_steps, ACCUMULATION)
    prompts_per_step = training_args.per_device_train_batch_size * accumulation
    dataset, split_flags = make_fixture(recipe, script_args, training_args, tmp_path, prompts_per_step)
    start = sft_output(tiny_checkpoint, tmp_path / "sft", script_args.task or "catalogue")
    output_dir = tmp_path / "run"
    overrides = [
        *("--model_name_or_path", str(start), "--dataset_name", str(dataset), *split_flags),
        *("--use_cpu", "true", "--max_steps", "2", "--output_dir", str(output_dir), "--logging_steps", "1"),
        *("--gradient_accumulation_steps", str(accumulation)),
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
