"""The `Task`: what a model is asked and how its answers are scored, in one object per kind of task.

A task is built once from the task config saved with a model (`phi3v_task.json`, [`TaskConfig`]) and handed to every
script, callback and report, which never ask which kind it is. It knows:

- how a row of any layout becomes a conversation (`row_converter`) and an evaluation item (`eval_items`: `id`,
  `images`, `prompt` messages, `references`);
- how an answer is read (`parse`: the fields a structured answer holds, `answer_fields`; none for free text);
- how answers are scored: per item (`item_scores`), over a set of items (`metrics`, the one definition used by
  validation during training, the W&B table, the evaluation report and the app), and as a reward for RL (`rewards`);
- what a prediction table shows (`table_columns` / `table_cells`, `item_record` / `answer_record`).

This class is the plain conversation: the last assistant turn is the answer, scored by exact match and edit similarity
after normalising (`phi3v.text_metrics.answer_scores`); the catalogue ([`CatalogueTask`]) and the Cookbook's published
tasks ([`PublishedTask`]) refine it.
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

from phi3v.data.conversation import as_conversation
from phi3v.modeling.chat_format import IMAGE_TAG
from phi3v.text_metrics import answer_scores

from .config import TaskConfig


CONVERSATION_METRICS_EXPLAINED = """\
Each answer is compared with its reference(s), the best over them: `exact_match` after stripping spaces and trailing
dots, casefolding and collapsing whitespace on both sides; `edit_similarity` is 1 - normalised Levenshtein distance
of those normalised strings. Task metrics, when the task has one, follow its published definition.
"""


class Task:
    r"""
    The plain conversation, and the interface every task shares (see the module docstring).

    Args:
        config ([`TaskConfig`]): the task, the dataset layout, and the catalogue question and answer template that
            rows of the catalogue layout are rendered with.
    """

    answer_fields: tuple[str, ...] = ()  # the fields `parse` reads from an answer
    table_columns: tuple[str, ...] = ()  # the W&B table's columns after image, reference and prediction
    fixed_question: bool = False  # whether the model answers one trained question only (the app's question box)
    metrics_explained: str = CONVERSATION_METRICS_EXPLAINED

    def __init__(self, config: TaskConfig):
        self.config = config

    @property
    def name(self) -> str:
        return self.config.task

    @property
    def question(self) -> str:
        return self.config.question

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def row_converter(
        self, columns: Sequence[str], dataset_name: str, image_folder: str | None = None
    ) -> tuple[str, Callable[[Mapping], dict] | None]:
        """The layout of a dataset with `columns` and its rows' converter to TRL's conversational format."""
        return self.config.row_converter(columns, dataset_name, image_folder)

    def check_training_rows(self, rows, layout: str, dataset_name: str) -> None:
        """Stops a run at start-up on training rows the task cannot learn from; any conversation will do here.

        Args:
            rows (`datasets.Dataset`): the training split.
            layout (`str`): its layout.
            dataset_name (`str`): named in the error.
        """

    def eval_items(
        self,
        rows: Iterable[Mapping],
        layout: str,
        to_conversation: Callable[[Mapping], Mapping] | None,
        skip_rows: Collection[int] = (),
    ) -> list[dict]:
        """Evaluation items of rows in `layout`: the last assistant turn of each conversation is asked.

        Args:
            rows (`Iterable[Mapping]`): the dataset's rows (ideally with undecoded images).
            layout (`str`): their layout (`phi3v.data.formats`), or `"preference"` for preference pairs, whose chosen
                answer is the reference.
            to_conversation (`Callable`, *optional*): the layout's converter to TRL's conversational format.
            skip_rows (`Collection[int]`, *optional*): indices of rows not to ask (those `phi3v.data.validation`
                found bad); the others keep their index as their id when the rows have no id column.

        Raises:
            `BadRow`: for a row that cannot be asked and is not skipped.
        """
        if layout == "preference":
            return conversation_items(rows, chosen_conversation, id_column="product_code", skip_rows=skip_rows)
        return conversation_items(rows, to_conversation, skip_rows=skip_rows)

    def parse(self, answer: str) -> dict:
        """The fields of `answer_fields` read from an answer (`None` where unread); free text has none."""
        return {}

    def format_field(self, value) -> str:
        """A field read by `parse`, as shown to people."""
        return str(value)

    def item_scores(self, answer: str, item: Mapping) -> dict[str, float]:
        """One answer's scores against its item's references; the first is the task's headline metric."""
        return answer_scores(answer, item["references"])

    def metrics(self, items: Sequence[Mapping], answers: Sequence[str]) -> dict[str, float | int | None]:
        """The task's metrics of one system's answers to `items`: `num_samples`, then the mean of each item score.

        Raises:
            `ValueError`: for no items, or a different number of answers.
        """
        check_answers(items, answers)
        scores = [self.item_scores(answer, item) for answer, item in zip(answers, items, strict=True)]
        return {"num_samples": len(items)} | {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}

    def scores(self, items: Sequence[Mapping], answers: Sequence[str]) -> dict[str, float]:
        """`metrics` as logged during training: the metrics that have a value, without `num_samples`."""
        metrics = self.metrics(items, answers)
        return {name: float(value) for name, value in metrics.items() if name != "num_samples" and value is not None}

    def rewards(self, answer: str, item: Mapping) -> dict[str, float]:
        """The reward of one answer for reinforcement learning, by component, each in [0, 1]."""
        return {"edit_similarity": answer_scores(answer, item["references"])["edit_similarity"]}

    def table_cells(self, item: Mapping, answer: str) -> list:
        """The W&B table's cells of `table_columns` for one answer."""
        return []

    def item_record(self, item: Mapping) -> dict:
        """What `predictions.jsonl` says of an item before the systems' answers."""
        return {"id": item["id"], "prompt": item["prompt"][-1]["content"], "references": list(item["references"])}

    def answer_record(self, item: Mapping, answer: str) -> dict:
        """What `predictions.jsonl` says of one system's answer to an item."""
        return {"answer": answer, "scores": self.item_scores(answer, item)}

    def price_points(self, items: Sequence[Mapping], answers: Sequence[str]) -> tuple[list, list] | None:
        """True and predicted prices of the answers for a scatter plot, or `None` for a task without prices."""
        return None

    def baselines(
        self, items: Sequence[Mapping], load_train_split: Callable[[], object], train_split: str
    ) -> tuple[dict[str, dict], list[str]]:
        """Image-free baselines scored beside the models, and the report's notes about them; none here."""
        return {}, []


def chosen_conversation(row: Mapping) -> dict:
    """A preference pair as the conversation that ends in its chosen answer."""
    return {**row, "completion": row["chosen"]}


def conversation_items(
    rows: Iterable[Mapping],
    to_conversation: Callable[[Mapping], Mapping] | None,
    id_column: str = "id",
    skip_rows: Collection[int] = (),
) -> list[dict]:
    """Evaluation items of conversational rows: `id`, `images` (those the prompt names), `prompt`, `references`.

    The asked turn is the last assistant turn and everything before it is the prompt.

    Args:
        rows (`Iterable[Mapping]`): the dataset's rows (ideally with undecoded images).
        to_conversation (`Callable`, *optional*): the dataset layout's converter (`phi3v.data.formats`).
        id_column (`str`, *optional*, defaults to `"id"`): the column that names a row; else its index.
        skip_rows (`Collection[int]`, *optional*): indices of rows not to ask.
    """
    items = []
    for index, row in enumerate(rows):
        if index in skip_rows:
            continue
        conversation = as_conversation(to_conversation(row) if to_conversation is not None else row)
        prompt, reference = conversation.eval_split()
        named = max((int(k) for m in prompt for k in IMAGE_TAG.findall(m["content"])), default=0)
        items.append(
            {
                "id": str(row.get(id_column, index)),
                "images": conversation.images[:named],
                "prompt": prompt,
                "references": [reference],
            }
        )
    return items


def check_answers(items: Sequence[Mapping], answers: Sequence[str]) -> None:
    """Raises `ValueError` unless there is one answer per item, and at least one."""
    if len(answers) != len(items) or not answers:
        raise ValueError(f"Got {len(answers)} answers for {len(items)} items; need as many, at least one.")
