"""Validation by generation: the model answers a fixed sample of validation items (greedy), and the answers are scored
with the task's own metrics, so a run logs whether its answers improve, not only whether its loss falls.

For the catalogue, answers and references are parsed with the model's answer template and scored like
`scripts/evaluate.py` scores them (`parse_rate`, `title_exact_match`, `category_accuracy`, `price_mape`, ...); for any
other task, by exact match and edit similarity after normalising (`phi3v.text_metrics.answer_scores`).
"""

from collections.abc import Mapping, Sequence

import numpy as np

from phi3v.inference.generation import answer_items
from phi3v.tasks.catalogue import AnswerTemplate
from phi3v.tasks.catalogue.metrics import score_catalogue
from phi3v.text_metrics import answer_scores


def score_answers(
    answers: Sequence[str], references: Sequence[Sequence[str]], template: AnswerTemplate | None = None
) -> dict[str, float]:
    """The task's metrics of generated answers against their references.

    Args:
        answers (`Sequence[str]`): one generated answer per item.
        references (`Sequence[Sequence[str]]`): each item's acceptable answers; for the catalogue, the first is the
            rendered truth.
        template ([`AnswerTemplate`], *optional*): the catalogue's answer template; without it, the answers are scored
            by exact match and edit similarity.

    Returns:
        `dict[str, float]`: the metrics that have a value (a catalogue template without a price has no price metrics).
    """
    if len(answers) != len(references) or not answers:
        raise ValueError(f"Got {len(answers)} answers for {len(references)} references; need as many, at least one.")
    if template is None:
        scores = [answer_scores(answer, refs) for answer, refs in zip(answers, references, strict=True)]
        return {name: float(np.mean([score[name] for score in scores])) for name in ("exact_match", "edit_similarity")}
    truths = [template.parse(refs[0]) for refs in references]
    metrics = score_catalogue(truths, [template.parse(answer) for answer in answers], template.fields)
    return {name: float(value) for name, value in metrics.items() if name != "num_samples" and value is not None}


class GenerationValidation:
    r"""
    Generates answers for a fixed set of validation items and scores them with `score_answers`.

    Every process generates every item: under ZeRO-3 and FSDP all processes must run the same forward passes, and
    with the same weights and greedy decoding they do. Keep the sample small (tens of items).

    Args:
        processor ([`Phi3VProcessor`]): renders and tokenises the prompts.
        items (`Sequence[Mapping]`): validation items (`images`, `prompt`, `references`; `phi3v.inference.items`).
        template ([`AnswerTemplate`], *optional*): the catalogue's answer template (see `score_answers`).
        batch_size (`int`, *optional*, defaults to 16): items per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to 64): the longest answer generated.
    """

    def __init__(
        self,
        processor,
        items: Sequence[Mapping],
        template: AnswerTemplate | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 64,
    ):
        if not items:
            raise ValueError("Generation validation needs at least one validation item.")
        self.processor = processor
        self.items = list(items)
        self.template = template
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.answers: list[str] | None = None  # the latest evaluation's, for the W&B table to show without generating

    def __call__(self, model) -> dict[str, float]:
        """The metrics of `model`'s greedy answers (the model is left in the mode it was in)."""
        self.answers = answer_items(model, self.processor, self.items, self.batch_size, self.max_new_tokens)
        return score_answers(self.answers, [item["references"] for item in self.items], self.template)
