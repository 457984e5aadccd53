"""A W&B table of generated answers on validation rows, logged at each evaluation."""

from transformers import TrainerCallback

from phi3v.data.image_columns import load_image

from .generation_validation import GenerationValidation


class PredictionsTableCallback(TrainerCallback):
    r"""
    At each evaluation, logs a W&B table `eval/predictions` of the first `num_rows` validation items (the first image,
    the reference, the generated answer, then the task's `table_columns`, e.g. the catalogue's price error) and the
    task's metrics of those answers as `eval/predictions_<metric>` (`Task.metrics`: the same definitions as the
    evaluation report).

    The answers are the generation validation's of this evaluation when it already generated them (DPO's
    `eval_generations`), else generated here: greedy, not read off teacher-forced logits, so the table shows what the
    model would say. Every process generates, because ZeRO-3 and FSDP need all of them in the forward pass; the main
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
