"""The Cookbook's published tasks (DocVQA, Hateful Memes, NLVR2) as a [`Task`]: the Cookbook's prompt on rows of its
evaluation layout, scored with its metric (ANLS, accuracy) before exact match and edit similarity."""

from collections.abc import Callable, Collection, Iterable, Mapping

from phi3v.text_metrics import answer_scores

from .base import Task
from .config import TaskConfig
from .cookbook import TASKS


class PublishedTask(Task):
    r"""
    A task of the Phi-3 Cookbook's fine-tuning tables ([`CookbookTask`] `spec`: converters, metric, data sources).

    Rows in the layout of the task's evaluation set (`nielsr/docvqa_1200_examples` for DocVQA, the_cauldron for the
    others) are asked the Cookbook's prompt and scored against all their references; rows of any other layout (e.g.
    the_cauldron's DocVQA during training) are asked their last assistant turn, as any conversation.

    Args:
        config ([`TaskConfig`]): `task` names a key of `phi3v.tasks.TASKS`.
    """

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.spec = TASKS[config.task]

    def eval_items(
        self,
        rows: Iterable[Mapping],
        layout: str,
        to_conversation: Callable[[Mapping], Mapping] | None,
        skip_rows: Collection[int] = (),
    ) -> list[dict]:
        if layout != self.spec.eval_source.format:
            return super().eval_items(rows, layout, to_conversation, skip_rows)
        return [
            {"id": str(row.get("id", index)), **self.spec.to_eval_item(row)}
            for index, row in enumerate(rows)
            if index not in skip_rows
        ]

    def item_scores(self, answer: str, item: Mapping) -> dict[str, float]:
        references = list(item["references"])
        return {self.spec.metric.__name__: float(self.spec.metric(answer, references))} | answer_scores(
            answer, references
        )

    def rewards(self, answer: str, item: Mapping) -> dict[str, float]:
        """The Cookbook's metric of the answer (ANLS or accuracy)."""
        return {self.spec.metric.__name__: float(self.spec.metric(answer, list(item["references"])))}
