"""Resume safety of `scripts/sft.py`: a run killed while saving a checkpoint resumes from the newest complete one (and
says which it skipped) to the same final step and losses as an uninterrupted run; another recipe, a LoRA run into a
full fine-tune's directory, a file or a foreign directory as `output_dir` are refused before the model loads, with
the way out, and leave the directory byte-identical.

Only the killed run has a process of its own (it is killed); the others run in this process (`run_script_here`, as
`python scripts/sft.py` would), each sparing the ~14 s of imports of a new interpreter."""

import json
import shutil
from pathlib import Path

import pytest

from ..conftest import built_once
from ..safety_helpers import output_of, run_script, run_script_here, tree_digest


# Batches of 2 keep the run inside its first epoch, where the length-grouped order is reproducible on resume.
OVERRIDES = ["--max_steps", "12", "--save_steps", "4", "--logging_steps", "2", "--eval_strategy", "no"]
OVERRIDES += ["--per_device_train_batch_size", "2", "--save_total_limit", "5"]

# Runs the script with the Trainer's RNG-state save of checkpoint-8 replaced by a SIGKILL: the model, optimizer and
# scheduler files of checkpoint-8 are on disk, its RNG states and trainer_state.json (written last) are not.
KILL_DURING_SAVE = """
import os, runpy, signal, sys
from transformers import Trainer
save_rng_state = Trainer._save_rng_state
def save_rng_state_or_die(self, output_dir):
    if os.path.basename(output_dir) == "checkpoint-8":
        os.kill(os.getpid(), signal.SIGKILL)
    save_rng_state(self, output_dir)
Trainer._save_rng_state = save_rng_state_or_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def sft_args(checkpoint, catalogue, output_dir, *overrides):
    model = ["--model_name_or_path", checkpoint, "--dataset_name", catalogue]
    return ["recipes/smoke/sft-full.yaml", *model, "--output_dir", output_dir, *OVERRIDES, *overrides]


def logged_losses(output_dir):
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return state["global_step"], [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.fixture(scope="session")
def killed_then_rerun(tiny_checkpoint, synthetic_catalogue, tmp_path_factory) -> tuple[Path, str]:
    """(the run's output directory, what the rerun printed), made once and shared by the pytest-xdist workers."""

    def kill_then_rerun(root: Path) -> None:
        output_dir = root / "run"
        args = sft_args(tiny_checkpoint, synthetic_catalogue, output_dir)
        killed = run_script("sft.py", *args, launcher=KILL_DURING_SAVE)
        assert killed.returncode == -9, output_of(killed)[-3000:]
        incomplete = output_dir / "checkpoint-8"
        assert (incomplete / "model.safetensors").is_file() and not (incomplete / "trainer_state.json").exists()
        assert (output_dir / "checkpoint-4" / "trainer_state.json").is_file()
        rerun = run_script_here("sft.py", *args)
        assert rerun.returncode == 0, output_of(rerun)[-5000:]
        (root / "rerun-stdout.txt").write_text(rerun.stdout)

    root = built_once(tmp_path_factory, "killed-then-rerun", kill_then_rerun)
    return root / "run", (root / "rerun-stdout.txt").read_text()


def test_rerun_skips_the_incomplete_checkpoint_and_finishes_like_an_uninterrupted_run(
    killed_then_rerun, tiny_checkpoint, synthetic_catalogue, tmp_path
):
    output_dir, said = killed_then_rerun
    assert f"Skipping the incomplete checkpoint {output_dir / 'checkpoint-8'}: it has no trainer_state.json" in said
    assert f"Resuming training from {output_dir / 'checkpoint-4'} (step 4)" in said
    assert (output_dir / "checkpoint-8" / "trainer_state.json").is_file()  # rewritten by the resumed run, not deleted

    reference_dir = tmp_path / "uninterrupted"
    reference = run_script_here("sft.py", *sft_args(tiny_checkpoint, synthetic_catalogue, reference_dir))
    assert reference.returncode == 0, output_of(reference)[-5000:]
    assert f"Starting a new training run in {reference_dir}" in reference.stdout
    step, losses = logged_losses(output_dir)
    reference_step, reference_losses = logged_losses(reference_dir)
    assert step == reference_step == 12
    assert losses == pytest.approx(reference_losses, rel=1e-4)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["--learning_rate", "1e-2"], "learning_rate: 0.003 recorded, 0.01 now"),
        (["--dataset_name", "{other_dataset}"], "dataset_name:"),
        (["--use_peft", "true", "--freeze_vision_tower", "false"], "use_peft: False recorded, True now"),
    ],
)
def test_another_run_into_the_same_output_dir_is_refused_with_the_way_out(
    killed_then_rerun, tiny_checkpoint, synthetic_catalogue, tmp_path, overrides, named
):
    output_dir, _ = killed_then_rerun
    other_dataset = tmp_path / "other"
    other_dataset.mkdir()
    overrides = [value.format(other_dataset=other_dataset) for value in overrides]
    before = tree_digest(output_dir)
    result = run_script_here("sft.py", *sft_args(tiny_checkpoint, synthetic_catalogue, output_dir, *overrides))
    assert result.returncode != 0
    message = output_of(result)
    assert f"output_dir {output_dir} holds another training run" in message and named in message
    assert "--overwrite_output_dir true" in message and "new --output_dir" in message
    assert f"--resume_from_checkpoint {output_dir / 'checkpoint-12'}" in message
    assert "Resuming" not in result.stdout and "*** Train ***" not in message
    assert tree_digest(output_dir) == before


def test_a_file_or_a_foreign_directory_is_never_trained_into(tiny_checkpoint, synthetic_catalogue, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    a_file = tmp_path / "model.txt"
    a_file.write_text("mine")
    for output_dir, expected in [(notes, "was not created by this project"), (a_file, "is a file")]:
        before = tree_digest(output_dir)
        overwrite = ["--overwrite_output_dir", "true"]
        result = run_script_here("sft.py", *sft_args(tiny_checkpoint, synthetic_catalogue, output_dir, *overwrite))
        assert result.returncode != 0 and expected in output_of(result) and str(output_dir) in output_of(result)
        assert tree_digest(output_dir) == before


def test_overwrite_starts_fresh_and_an_explicit_checkpoint_resumes_with_new_arguments(
    killed_then_rerun, tiny_checkpoint, synthetic_catalogue, tmp_path
):
    # A copy of the shared run: the tests above read the original, perhaps at the same time on another worker.
    output_dir = tmp_path / "run"
    shutil.copytree(killed_then_rerun[0], output_dir)
    fresh = ["--overwrite_output_dir", "true", "--max_steps", "2", "--save_steps", "2"]
    result = run_script_here("sft.py", *sft_args(tiny_checkpoint, synthetic_catalogue, output_dir, *fresh))
    assert result.returncode == 0, output_of(result)[-5000:]
    assert f"Starting a new training run in {output_dir}: deleted the old run" in result.stdout
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2"]

    checkpoint = output_dir / "checkpoint-2"
    longer = ["--resume_from_checkpoint", checkpoint, "--max_steps", "4", "--save_steps", "2"]
    result = run_script_here("sft.py", *sft_args(tiny_checkpoint, synthetic_catalogue, output_dir, *longer))
    assert result.returncode == 0, output_of(result)[-5000:]
    assert f"Resuming training from {checkpoint} (--resume_from_checkpoint)" in result.stdout
    assert "max_steps: 2 recorded, 4 now" in result.stdout
    assert json.loads((output_dir / "run_config.json").read_text())["max_steps"] == 4
    assert logged_losses(output_dir)[0] == 4
