"""Every GRPO recipe as shipped, run by `tests/recipe_runs.py` as `tests/e2e/test_recipes_run.py` runs the others (2
steps of at most 2 micro-batches, the tiny model as an SFT output of the recipe's task, a fixture in its layout, the
one process its launch would start, in this process), each step's rewards logged. `scripts/grpo.py` on two
processes under DeepSpeed ZeRO-3 (sampling with the gathered weights, the validation answers generated on every
process, the adapter gathered at save time): tests/e2e/test_two_processes.py."""

import json
from pathlib import Path

import pytest

from ..recipe_runs import RECIPES, run_recipe, stage


GRPO_RECIPES = sorted(path for path in RECIPES.rglob("*.yaml") if stage(path) == "grpo")


def rewards_logged(output_dir: Path) -> tuple[list[dict], list[dict]]:
    """The training and evaluation entries of a finished run's log."""
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [e for e in history if "reward" in e], [e for e in history if "eval_reward" in e]


@pytest.mark.parametrize("recipe", GRPO_RECIPES, ids=lambda path: path.relative_to(RECIPES).as_posix())
def test_grpo_recipe_runs_as_shipped(recipe, tiny_checkpoint, tmp_path):
    run = run_recipe(recipe, tiny_checkpoint, tmp_path, "--logging_steps", "1")  # every step's rewards logged
    assert run.result.returncode == 0, run.result.stdout[-3000:] + run.result.stderr[-5000:]
    training, evaluations = rewards_logged(run.output_dir)
    for name in run.script_args.reward_funcs:
        assert all(f"rewards/{name}/mean" in entry for entry in training), name
    assert evaluations[0]["step"] == 0 and run.training_args.metric_for_best_model in evaluations[0]
    assert (run.output_dir / "adapter_model.safetensors").is_file() and (run.output_dir / "selection.json").is_file()
