"""The checks of generated answers on validation rows: the W&B table logged at each evaluation, and
`answer_validation`, which builds it and DPO's and GRPO's scored validation for a run."""

from collections.abc import Callable, Mapping

import datasets
from transformers import TrainerCallback

from phi3v.data.image_columns import load_image, undecoded

from .generation_validation import MAX_NEW_TOKENS, GenerationValidation


class PredictionsTableCallback(TrainerCallback):
    r"""
    At each evaluation, logs a W&B table `eval/predictions` of the first `num_rows` validation items (the first image,
    the reference, the generated answer, then the task's `table_columns`, e.g. the catalogue's price error) and the
    task's metrics of those answers as `eval/predictions_<metric>` (`Task.metrics`: the same definitions as the
    evaluation report).

    The answers are the generation validation's of this evaluation when it already generated them (DPO's and
    GRPO's `eval_generations`), else generated here: greedy, not read off teacher-forced logits, so the table shows
    what the model would say. Every process generates, because ZeRO-3 and FSDP need all of them in the forward pass; the main
    process logs. W&B is initialised by transformers' `WandbCallback` (`report_to: wandb`), with the project and
    entity taken from `WANDB_PROJECT` and `WANDB_ENTITY`; `WANDB_MODE=offline` needs no login.

    Args:
        validation ([`GenerationValidation`]): the items, the task and the answers.
        num_rows (`int`, *optional*): how many of the validation's items the table shows; defaults to all.
    """

    def __init__(self, validation: GenerationValidation, num_rows: int | None = None):
        self.validation = validation
        self.num_rows = len(validation.items) if num_rows is None else min(num_rows, len(validation.items))

    def answers(self, model, step: int) -> list[str]:
        """The validation's answers at `step`, generated now unless it already did at this step."""
        if self.validation.answered_step != step or self.validation.answers is None:
            self.validation.generate(model, step)
        return self.validation.answers[: self.num_rows]

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        answers = self.answers(model, state.global_step)
        if not state.is_world_process_zero:
            return
        import wandb

        task, items = self.validation.task, self.validation.items[: self.num_rows]
        table = wandb.Table(columns=["image", "reference", "prediction", *task.table_columns])
        for item, answer in zip(items, answers, strict=True):
            image = wandb.Image(load_image(item["images"][0])) if item["images"] else None
            table.add_data(image, item["references"][0], answer, *task.table_cells(item, answer))
        scores = {f"eval/predictions_{name}": value for name, value in task.scores(items, answers).items()}
        wandb.log({"eval/predictions": table, **scores, "train/global_step": state.global_step})


def answer_validation(
    processor,
    task,
    eval_rows: datasets.Dataset | None,
    layout: str,
    to_conversation: Callable[[Mapping], dict] | None,
    eval_generations: int,
    eval_predictions: int,
    report_to: list[str],
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> tuple[GenerationValidation | None, list[TrainerCallback]]:
    """The generated-answer checks a run asks for: the greedy answers to the first `eval_generations` validation rows,
    scored with the task's metrics at each evaluation (DPO, GRPO: `eval_<metric>`), and with W&B the table of the
    first `eval_predictions` answers, which shows those same answers when there are enough (nothing generated twice).

    Args:
        processor: the run's processor.
        task ([`~phi3v.tasks.Task`]): asks and scores the rows (`Task.eval_items`).
        eval_rows (`datasets.Dataset`, *optional*): the validation rows; `None` for a run without evaluation.
        layout (`str`): their layout, or `"preference"` for preference pairs.
        to_conversation (`Callable`, *optional*): the layout's converter to TRL's conversational format.
        eval_generations (`int`): how many rows are answered and scored at each evaluation; 0 for none.
        eval_predictions (`int`): how many rows the W&B table shows; 0 for no table.
        report_to (`list[str]`): the run's `report_to`; the table needs `wandb`.
        max_new_tokens (`int`, *optional*, defaults to `MAX_NEW_TOKENS`, 64): the longest answer generated.

    Returns:
        `tuple`: the [`GenerationValidation`] to give the trainer (or `None`), and the callbacks to add.
    """
    if eval_rows is None:
        return None, []

    def first_rows(count: int) -> GenerationValidation:
        rows = undecoded(eval_rows.select(range(min(count, len(eval_rows)))))
        items = task.eval_items(rows, layout, to_conversation)
        return GenerationValidation(processor, task, items, max_new_tokens=max_new_tokens)

    validation = first_rows(eval_generations) if eval_generations > 0 else None
    callbacks = []
    if "wandb" in report_to and eval_predictions > 0:
        shared = validation is not None and eval_predictions <= len(validation.items)
        table_rows = validation if shared else first_rows(eval_predictions)
        callbacks.append(PredictionsTableCallback(table_rows, eval_predictions))
    return validation, callbacks
