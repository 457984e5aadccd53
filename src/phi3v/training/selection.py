"""Whether the saved model beat the model training started from, on the metric the recipe selects checkpoints by.

With `eval_on_start`, the first evaluation (step 0) scores the unchanged start model (for DPO, the SFT model): the bar.
With `load_best_model_at_end`, the trainer restores the best checkpoint by `metric_for_best_model` before saving. The
verdict compares the two and says so plainly: on the main process, in the model card, and in `selection.json`.
"""

import json
from pathlib import Path

import numpy as np


SELECTION_FILE = "selection.json"


def selection_verdict(
    log_history: list[dict],
    metric_for_best_model: str,
    greater_is_better: bool,
    best_model_checkpoint: str | None,
    best_metric: float | None,
    load_best_model_at_end: bool,
    start_model: str,
    start_label: str = "the start model",
) -> dict:
    """Compares the saved model's score with the start model's, from a finished run's state.

    Args:
        log_history (`list[dict]`): `TrainerState.log_history` (the evaluations carry `step` and `eval_*`).
        metric_for_best_model (`str`): the selection metric, with or without its `eval_` prefix.
        greater_is_better (`bool`): whether higher values of the metric are better.
        best_model_checkpoint (`str`, *optional*): `TrainerState.best_model_checkpoint`.
        best_metric (`float`, *optional*): `TrainerState.best_metric`, the score of that checkpoint.
        load_best_model_at_end (`bool`): whether the saved model is the best checkpoint (else the last step's).
        start_model (`str`): the model training started from (its path), named in the message.
        start_label (`str`, *optional*, defaults to `"the start model"`): what the message calls it (`"the SFT model"`).

    Returns:
        `dict`: `metric`, `greater_is_better`, `start_model`, `start_score` (step 0, or `None` without
        `eval_on_start`), `saved` (the checkpoint directory, or `"last step"`), `saved_step`, `saved_score`,
        `scores_by_step`, `beats_start` (`True`, `False`, or `None` when a score is missing) and `message`.
    """
    metric = metric_for_best_model if metric_for_best_model.startswith("eval_") else f"eval_{metric_for_best_model}"
    scores = {entry["step"]: entry[metric] for entry in log_history if metric in entry}
    start_score = scores.get(0)
    if load_best_model_at_end and best_model_checkpoint is not None:
        saved, saved_step, saved_score = (
            best_model_checkpoint,
            int(best_model_checkpoint.rsplit("-", 1)[-1]),
            best_metric,
        )
    else:
        last_step = max((step for step in scores if step > 0), default=None)
        saved, saved_step = "last step", last_step
        saved_score = scores.get(last_step) if last_step is not None else None
    better = np.greater if greater_is_better else np.less
    beats_start = None
    if start_score is not None and saved_score is not None:
        beats_start = bool(better(saved_score, start_score))
    saved_name = Path(saved).name if saved != "last step" else "the last step"

    if saved_score is None:
        message = (
            f"No trained checkpoint was scored on {metric} (no evaluation after step 0), so nothing says whether "
            f"training improved on {start_label} ({start_model}); the saved model is the last step's."
        )
    elif start_score is None:
        message = (
            f"{start_label[0].upper()}{start_label[1:]} ({start_model}) was not scored (set `eval_on_start: true`), so "
            f"nothing says whether training beat it; saved: {saved_name}, {metric} = {saved_score:.4g}."
        )
    elif beats_start:
        message = (
            f"The saved model ({saved_name}, step {saved_step}) beats {start_label} on {metric}: {saved_score:.4g} "
            f"against {start_score:.4g} for {start_model}."
        )
    else:
        message = (
            f"No checkpoint beat {start_label} on {metric}: the best, {saved_name} (step {saved_step}, saved), "
            f"scores {saved_score:.4g} against {start_score:.4g} for {start_model}. Use {start_model}; the saved "
            "model is kept for inspection only."
        )
    return {
        "metric": metric,
        "greater_is_better": greater_is_better,
        "start_model": start_model,
        "start_score": start_score,
        "saved": saved,
        "saved_step": saved_step,
        "saved_score": saved_score,
        "scores_by_step": scores,
        "beats_start": beats_start,
        "message": message,
    }


def report_selection(trainer, start_model: str, start_label: str = "the start model") -> dict | None:
    """After `save_run`: the verdict of a run that selects checkpoints by a metric, printed on the main process,
    written to `selection.json` and appended to the model card (`README.md`) in the output directory.

    Args:
        trainer (`transformers.Trainer`): the finished trainer (its state holds the evaluations and best checkpoint).
        start_model (`str`): the model training started from (for DPO, the SFT output).
        start_label (`str`, *optional*, defaults to `"the start model"`): what the messages call it.

    Returns:
        `dict` or `None`: the verdict (`selection_verdict`), or `None` when the run names no `metric_for_best_model`.
    """
    args, state = trainer.args, trainer.state
    if args.metric_for_best_model is None or args.eval_strategy == "no":
        return None
    verdict = selection_verdict(
        state.log_history,
        args.metric_for_best_model,
        args.greater_is_better,
        state.best_model_checkpoint,
        state.best_metric,
        args.load_best_model_at_end,
        start_model,
        start_label,
    )
    if trainer.accelerator.is_main_process:
        output_dir = Path(args.output_dir)
        (output_dir / SELECTION_FILE).write_text(json.dumps(verdict, indent=2) + "\n")
        steps = ", ".join(f"step {step}: {score:.4g}" for step, score in sorted(verdict["scores_by_step"].items()))
        with (output_dir / "README.md").open("a") as card:
            card.write(f"\n## Checkpoint selection\n\n{verdict['message']}\n\n{verdict['metric']} by step: {steps}.\n")
    trainer.accelerator.print(("" if verdict["beats_start"] else "WARNING: ") + verdict["message"])
    return verdict
