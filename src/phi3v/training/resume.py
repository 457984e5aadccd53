"""Start or resume a training run in `output_dir`, never silently mixing two runs, checked before the model loads.

The decision comes first and writes nothing; when the run starts training (its data, model and trainer ready), it
records what defines it in `output_dir/run_config.json`, so a start that fails earlier leaves no trace that would
refuse the corrected command. Recorded: every parsed argument of the recipe
(model, dataset, question and answer template, LoRA, optimiser, schedule, batch sizes, epochs/steps, seed, max_length,
num_crops, ...) except those in `NOT_PART_OF_THE_RUN` and `NOT_PART_OF_THE_RUN_PREFIXES`: where and how often it logs,
evaluates and saves, what it reports to, and how it runs (processes, device, attention kernel, activation
checkpointing, data-loader workers), which may change between a run and its resumption. Local model and dataset
paths are recorded resolved, so the same command from another directory is still the same run.

Re-running a command into `output_dir`:

- missing or empty: a fresh run;
- the same run (its `run_config.json` matches): resumes from the newest *complete* checkpoint, saying so, and naming
  any newer incomplete one it skips (a save killed half-way; it is left in place and the Trainer writes over it when
  it reaches that step again);
- another run: refused before the model loads, listing what differs, with the ways out: a new `--output_dir`,
  `--overwrite_output_dir true` (deletes the old run: allowed only in a directory this project created), or
  `--resume_from_checkpoint PATH` (continue that checkpoint with the new arguments anyway);
- a file, a non-empty directory this project did not create, or another kind of output: refused.

A checkpoint is complete when `trainer_state.json`, which the Trainer writes last (`Trainer._save_checkpoint`: model,
optimizer, scheduler, RNG states, then the state), parses and names the checkpoint's step, and the model or adapter
weights are there. A LoRA checkpoint (adapter weights) never resumes a full fine-tune or the other way around.
"""

import json
import re
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

from transformers import TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from phi3v.errors import MissingPathError, UsageError
from phi3v.outputs import (
    MARKER_NAME,
    OutputPathError,
    check_not_an_input,
    empty_output_dir,
    mark_output_dir,
    output_kind,
    output_writer,
    user_entries,
)


RUN_CONFIG_NAME = "run_config.json"
TRAINING_KIND = "training"
NOT_PART_OF_THE_RUN = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "ignore_data_skip",
        "restore_callback_states_from_checkpoint",
        "run_name",
        "project",
        "report_to",
        "push_to_hub",
        "disable_tqdm",
        "log_level",
        "log_level_replica",
        "log_on_each_node",
        "local_rank",
        "use_cpu",
        "attn_implementation",
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "dataloader_multiprocessing_context",
        "dataset_num_proc",
        "do_train",
        "do_eval",
        "do_predict",
        "per_device_eval_batch_size",
        "prediction_loss_only",
        "include_for_metrics",
        "batch_eval_metrics",
        "dataset_test_split",
        "eval_predictions",
        "skip_memory_metrics",
        "debug",
        "include_num_input_tokens_seen",
        "torch_empty_cache_steps",
        "enable_jit_checkpoint",
        # How a local CSV file is read, not what it holds: detected or given, the same bytes give the same rows.
        "encoding",
        "delimiter",
    }
)
NOT_PART_OF_THE_RUN_PREFIXES = ("logging_", "eval_", "save_", "hub_", "trackio_", "ddp_", "torch_compile")
# Arguments holding paths, recorded resolved when they exist here.
PATH_ARGUMENTS = ("model_name_or_path", "base_model", "dataset_name", "chat_template_path")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def run_config(*parsed_args) -> dict:
    """What defines a run: the fields of the parsed argument dataclasses, minus those that may change on resume.

    Args:
        *parsed_args: the script's argument dataclasses (script, training and model arguments).

    Returns:
        `dict`: argument name -> JSON value, sorted by name.
    """
    config = {}
    for args in parsed_args:
        fields = args.to_dict() if isinstance(args, TrainingArguments) else asdict(args) if is_dataclass(args) else {}
        config.update({name: value for name, value in fields.items() if name not in config})
    config = {
        name: value
        for name, value in config.items()
        if name not in NOT_PART_OF_THE_RUN and not name.startswith(NOT_PART_OF_THE_RUN_PREFIXES)
    }
    for name in PATH_ARGUMENTS:
        if isinstance(config.get(name), str) and Path(config[name]).exists():
            config[name] = str(Path(config[name]).resolve())
    return json.loads(json.dumps(dict(sorted(config.items())), default=str))


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why a checkpoint directory cannot be resumed from, or `None` when it is complete (see the module docstring)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        return "it is not a directory"
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except FileNotFoundError:
        return "it has no trainer_state.json (the Trainer writes it last: the save was interrupted)"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "its trainer_state.json is cut short (the save was interrupted)"
    match = _CHECKPOINT.match(checkpoint.name)
    if match and state.get("global_step") != int(match.group(1)):
        return f"its trainer_state.json is for step {state.get('global_step')}"
    if not any((checkpoint / name).is_file() for name in WEIGHT_FILES):
        return f"it has none of the weight files {list(WEIGHT_FILES)}"
    return None


def find_checkpoints(output_dir: str | Path) -> tuple[Path | None, dict[Path, str]]:
    """The newest complete checkpoint of `output_dir`, and the newer incomplete ones with what is wrong with each."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None, {}
    checkpoints = [path for path in output_dir.iterdir() if _CHECKPOINT.match(path.name) and path.is_dir()]
    skipped = {}
    for checkpoint in sorted(checkpoints, key=lambda path: int(_CHECKPOINT.match(path.name).group(1)), reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, skipped
        skipped[checkpoint] = problem
    return None, skipped


@dataclass
class RunStart:
    """What `start_or_resume` decided: the checkpoint to resume from, and how to prepare `output_dir` for it.

    Nothing is written until `prepare` runs, right before training: a start that fails on its data, its model or its
    trainer leaves `output_dir` as it was (no `run_config.json` that would refuse the corrected command).
    """

    output_dir: Path
    checkpoint: Path | None
    config: dict
    notices: list[str]
    delete_old_run: bool
    script: str

    @property
    def resume_from_checkpoint(self) -> str | None:
        """The checkpoint for `Trainer.train(resume_from_checkpoint=...)`, or `None` for a fresh start."""
        return None if self.checkpoint is None else str(self.checkpoint)

    def prepare(self, training_args: TrainingArguments) -> None:
        """The main process deletes an old run (`--overwrite_output_dir true`), marks `output_dir` as this project's,
        records the run in `run_config.json` and prints which checkpoint it resumes from; the others wait."""
        with training_args.main_process_first(local=False, desc="deciding whether to resume"):
            pass  # every process has decided before the main process changes anything
        with training_args.main_process_first(local=False, desc="preparing output_dir"):
            if training_args.process_index == 0:
                if self.delete_old_run:
                    empty_output_dir(self.output_dir)
                mark_output_dir(self.output_dir, TRAINING_KIND, self.script)
                (self.output_dir / RUN_CONFIG_NAME).write_text(json.dumps(self.config, indent=2) + "\n")
                for notice in self.notices:
                    print(notice, flush=True)


def start_or_resume(training_args: TrainingArguments, script_args, model_args, script: str = "phi3v") -> RunStart:
    """Decides, before anything loads, whether this run starts fresh or resumes; changes nothing.

    Refusals raise `OutputPathError` naming the directory and the way out, on every process alike. The returned
    [`RunStart`] prepares `output_dir` when the run is about to train (`RunStart.prepare`).

    Args:
        training_args ([`~transformers.TrainingArguments`]): `output_dir` and `resume_from_checkpoint` are read.
        script_args: the script arguments; `overwrite_output_dir` is read.
        model_args: the model arguments.
        script (`str`, *optional*): the script, recorded in the output directory's marker.

    Returns:
        [`RunStart`]: the decision.
    """
    output_dir = Path(training_args.output_dir)
    overwrite = getattr(script_args, "overwrite_output_dir", False)
    config = run_config(script_args, training_args, model_args)
    inputs = [getattr(model_args, name, None) for name in ("model_name_or_path", "base_model")]
    check_not_an_input(output_dir, [*inputs, script_args.dataset_name])
    checkpoint, notices, delete_old_run = _decide(
        output_dir, training_args, config, overwrite, model_args.use_peft, script
    )
    return RunStart(output_dir, checkpoint, config, notices, delete_old_run, script)


def _decide(output_dir: Path, training_args, config: dict, overwrite: bool, use_peft: bool, script: str):
    """(checkpoint to resume from, lines to print, whether to delete the old run); raises on a refusal."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputPathError(f"output_dir {output_dir} is a file; choose a directory path.")
    explicit = training_args.resume_from_checkpoint
    if explicit is not None and overwrite:
        raise UsageError("Pass either --resume_from_checkpoint or --overwrite_output_dir true, not both.")
    entries = user_entries(output_dir)
    kind = output_kind(output_dir)
    if entries and kind not in (TRAINING_KIND, None):
        raise OutputPathError(
            f"output_dir {output_dir} holds this project's {kind} output, not a training run; choose another "
            "--output_dir."
        )
    if entries and kind is None:
        raise OutputPathError(
            f"output_dir {output_dir} is not empty and was not created by this project's training (no "
            f"{MARKER_NAME}); refusing to train into it, with or without --overwrite_output_dir. Choose another "
            "--output_dir."
        )

    writer = output_writer(output_dir) if entries else None
    if writer is not None and writer != script and not overwrite:
        # An SFT run and a DPO run train different things: one never resumes, or saves over, the other's checkpoints.
        raise OutputPathError(
            f"output_dir {output_dir} holds a run of {writer}, not of {script}; it is neither resumed nor added to. "
            f"Choose another --output_dir (or pass --overwrite_output_dir true to delete that run)."
        )
    if explicit is not None:
        problem = checkpoint_problem(explicit)
        checkpoint_writer = output_writer(Path(explicit).parent)
        if checkpoint_writer is not None and checkpoint_writer != script:
            raise OutputPathError(
                f"--resume_from_checkpoint {explicit} is a checkpoint of {checkpoint_writer}, not of {script}: a run "
                "resumes only its own script's checkpoints. Start from that model with --model_name_or_path instead."
            )
        if problem is not None:
            raise MissingPathError(f"Cannot resume from --resume_from_checkpoint {explicit}: {problem}.")
        _check_same_method(Path(explicit), use_peft)
        notices = [f"Resuming training from {explicit} (--resume_from_checkpoint), with this command's arguments."]
        differences = _differences(output_dir, config)
        if differences:
            notices.append(f"They differ from the run recorded in {output_dir / RUN_CONFIG_NAME}:\n{differences}")
        return Path(explicit), notices, False

    if not entries:
        return None, [f"Starting a new training run in {output_dir}."], False
    if overwrite:
        return (
            None,
            [f"Starting a new training run in {output_dir}: deleted the old run (--overwrite_output_dir)."],
            True,
        )
    differences = _differences(output_dir, config)
    latest, skipped = find_checkpoints(output_dir)
    if differences:
        resume_hint = f"--resume_from_checkpoint {latest}" if latest else "--resume_from_checkpoint CHECKPOINT"
        raise OutputPathError(
            f"output_dir {output_dir} holds another training run ({output_dir / RUN_CONFIG_NAME}); this command "
            f"differs in:\n{differences}\nNothing was changed. To start fresh, choose a new --output_dir, or pass "
            f"--overwrite_output_dir true to delete the old run; to continue the old run with these arguments anyway, "
            f"pass {resume_hint}."
        )
    notices = [f"Skipping the incomplete checkpoint {path}: {problem}." for path, problem in skipped.items()]
    if latest is None:
        return None, [*notices, f"No complete checkpoint in {output_dir}; training starts from step 0."], False
    _check_same_method(latest, use_peft)
    step = json.loads((latest / "trainer_state.json").read_text())["global_step"]
    notices.append(f"Resuming training from {latest} (step {step}): the same run was started in {output_dir}.")
    return latest, notices, False


def _differences(output_dir: Path, config: dict) -> str:
    """The arguments that differ from the recorded run, one per line, or `""` (also when nothing is recorded)."""
    recorded_path = output_dir / RUN_CONFIG_NAME
    if not recorded_path.is_file():
        if user_entries(output_dir) and output_kind(output_dir) == TRAINING_KIND:
            return f"  (the directory has no {RUN_CONFIG_NAME}: what the old run was is unknown)"
        return ""
    recorded = json.loads(recorded_path.read_text())
    names = sorted(set(recorded) | set(config))
    missing = "(not set)"
    return "\n".join(
        f"  {name}: {recorded.get(name, missing)!r} recorded, {config.get(name, missing)!r} now"
        for name in names
        if recorded.get(name, missing) != config.get(name, missing)
    )


def _check_same_method(checkpoint: Path, use_peft: bool) -> None:
    is_adapter = (checkpoint / ADAPTER_WEIGHTS).is_file()
    if is_adapter != bool(use_peft):
        saved, now = ("a LoRA adapter", "a full fine-tune") if is_adapter else ("a full fine-tune", "a LoRA run")
        raise OutputPathError(
            f"Checkpoint {checkpoint} holds {saved}; this command is {now} (use_peft={use_peft}), which cannot "
            "resume it. Choose a new --output_dir."
        )
