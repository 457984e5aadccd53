"""Validation by generation: the model answers a fixed sample of validation items (greedy), and the answers are scored
with the task's own metrics (`Task.metrics`, as `scripts/evaluate.py` scores them), so a run logs whether its answers
improve, not only whether its loss falls. `GeneratedAnswersEvaluation` adds them to a TRL trainer's evaluations (DPO's
and GRPO's alike), where `metric_for_best_model` can select checkpoints by them.
"""

from collections.abc import Mapping, Sequence

from phi3v.inference.generation import answer_items
from phi3v.tasks import Task


MAX_NEW_TOKENS = 64  # the longest validation answer where the run sets no limit (GRPO: `max_completion_length`)


class GenerationValidation:
    r"""
    Generates answers for a fixed set of validation items and scores them with the task's metrics.

    Every process generates every item: under ZeRO-3 and FSDP all processes must run the same forward passes, and
    with the same weights and greedy decoding they do. Keep the sample small (tens of items). The answers of the
    latest evaluation stay in `answers` (with the step they were generated at) for the W&B table to show.

    Args:
        processor ([`Phi3VProcessor`]): renders and tokenises the prompts.
        task ([`~phi3v.tasks.Task`]): scores the answers.
        items (`Sequence[Mapping]`): validation items (`images`, `prompt`, `references`; `Task.eval_items`).
        batch_size (`int`, *optional*, defaults to 16): items per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to `MAX_NEW_TOKENS`, 64): the longest answer generated.
    """

    def __init__(
        self,
        processor,
        task: Task,
        items: Sequence[Mapping],
        batch_size: int = 16,
        max_new_tokens: int = MAX_NEW_TOKENS,
    ):
        if not items:
            raise ValueError("Generation validation needs at least one validation item.")
        self.processor = processor
        self.task = task
        self.items = list(items)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.answers: list[str] | None = None
        self.answered_step: int | None = None

    def generate(self, model, step: int | None = None) -> list[str]:
        """`model`'s greedy answers (the model is left in the mode it was in), kept with the training step."""
        self.answers = answer_items(model, self.processor, self.items, self.batch_size, self.max_new_tokens)
        self.answered_step = step
        return self.answers

    def __call__(self, model, step: int | None = None) -> dict[str, float]:
        """The task's metrics of `model`'s greedy answers: those that have a value, `num_samples` left out."""
        return self.task.scores(self.items, self.generate(model, step))


class GeneratedAnswersEvaluation:
    r"""
    Mixin for a TRL trainer (`class Phi3VDPOTrainer(GeneratedAnswersEvaluation, DPOTrainer)`): each evaluation also
    scores the model's greedy answers on a fixed sample of validation items with the task's metrics.

    The trainer's own evaluation metrics (DPO's `eval_rewards/accuracies`, GRPO's `eval_reward`, ...) and, with
    `generation_validation`, the generation metrics (`eval_price_mape`, `eval_category_accuracy`, ... for the
    catalogue; `eval_exact_match` otherwise) reach the console, `trainer_state.json`'s `log_history` and W&B together,
    and `evaluate()` returns them, so `metric_for_best_model` can name one and `load_best_model_at_end` restores the best
    checkpoint by it. With `eval_on_start`, the first evaluation scores the unchanged start model: the bar the
    checkpoints have to clear (`phi3v.training.selection`). A `metric_for_best_model` the evaluation does not give
    stops the run at that first evaluation.

    Args:
        *args, **kwargs: as for the TRL trainer it is mixed into.
        generation_validation ([`GenerationValidation`], *optional*): scores generated answers at each evaluation.
    """

    def __init__(self, *args, generation_validation: GenerationValidation | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.generation_validation = generation_validation

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ):
        # Added here rather than after `evaluate()`: `Trainer.evaluate` logs and returns the metrics of this loop.
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self.generation_validation is not None:
            scores = self.generation_validation(self.model, self.state.global_step)
            output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in scores.items()})
        return output

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        # Checked at the first evaluation (the start model's, with `eval_on_start`), not after the first training steps.
        selection_metric = self.args.metric_for_best_model
        if selection_metric and metric_key_prefix == "eval":
            key = selection_metric if selection_metric.startswith("eval_") else f"eval_{selection_metric}"
            if key not in metrics:
                raise KeyError(
                    f"metric_for_best_model is {selection_metric!r}, but the evaluation gives only "
                    f"{sorted(metrics)}. Generation metrics need `eval_generations` > 0."
                )
        return metrics
