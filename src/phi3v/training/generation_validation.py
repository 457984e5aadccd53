"""Validation by generation: the model answers a fixed sample of validation items (greedy), and the answers are scored
with the task's own metrics (`Task.metrics`, as `scripts/evaluate.py` scores them), so a run logs whether its answers
improve, not only whether its loss falls.
"""

from collections.abc import Mapping, Sequence

from phi3v.inference.generation import answer_items
from phi3v.tasks import Task


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
        max_new_tokens (`int`, *optional*, defaults to 64): the longest answer generated.
    """

    def __init__(
        self, processor, task: Task, items: Sequence[Mapping], batch_size: int = 16, max_new_tokens: int = 64
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
