"""Reproducing a published row: the task's evaluation set as conversations, the Cookbook's scores, the report.

`scripts/reproduce.py` evaluates the base model, trains with the row's recipe and evaluates the result. The
evaluation generates the assistant turn of `eval_conversations(...)` (the Cookbook's prompt, first turn only); the
predictions are then scored here with the task's own metric against all the references of each item, and compared
with the published number.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
from datasets import Features, List, Value

from .cookbook import TASKS, CookbookTask, PublishedResult


EVAL_FEATURES = Features(
    {
        "images": List(datasets.Image()),
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "references": List(Value("string")),
    }
)


def _undecoded(rows: datasets.Dataset) -> datasets.Dataset:
    """`rows` with its image columns left encoded, so the images pass through to the new dataset byte for byte."""
    for name, feature in rows.features.items():
        if isinstance(feature, datasets.Image):
            rows = rows.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, List) and isinstance(feature.feature, datasets.Image):
            rows = rows.cast_column(name, List(datasets.Image(decode=False)))
    return rows


def eval_conversations(task: CookbookTask, rows: datasets.Dataset) -> datasets.Dataset:
    """The task's evaluation rows as conversations whose last turn is the one to generate.

    Each row becomes `images`, `messages` (the Cookbook's prompt, then the first reference as the assistant turn, so
    an evaluation that generates the last assistant turn asks exactly the Cookbook's question) and `references` (all
    the answers the metric accepts).

    Args:
        task ([`CookbookTask`]): The published task.
        rows (`datasets.Dataset`): Rows in the layout of `task.eval_source` (e.g. `nielsr/docvqa_1200_examples`).
    """

    def convert(row: Mapping) -> dict:
        item = task.to_eval_item(row)
        assistant = {"role": "assistant", "content": item["references"][0]}
        return {"images": item["images"], "messages": [*item["prompt"], assistant], "references": item["references"]}

    return _undecoded(rows).map(convert, remove_columns=rows.column_names, features=EVAL_FEATURES)


def score_predictions(
    task: CookbookTask, predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float, list[float]]:
    """The task's metric over the evaluation set: the published number (mean x 100) and each item's score.

    Args:
        task ([`CookbookTask`]): The published task.
        predictions (`Sequence[str]`): The generated answers, in the order of `references`.
        references (`Sequence[Sequence[str]]`): Each item's accepted answers.

    Raises:
        `ValueError`: when the two lengths differ or there is no item.
    """
    if len(predictions) != len(references) or not references:
        raise ValueError(f"{len(predictions)} predictions for {len(references)} evaluation items.")
    scores = [
        task.metric(prediction, list(answers)) for prediction, answers in zip(predictions, references, strict=True)
    ]
    return 100 * sum(scores) / len(scores), scores


@dataclass(frozen=True)
class Reproduction:
    """A reproduction's outcome: the scores before and after training against the published row.

    Args:
        published ([`PublishedResult`]): The row.
        before (`float`), after (`float`): The task's metric (x 100) before and after training.
        model (`str`): The model that was evaluated and trained.
        eval_set (`str`): The evaluation data as `name [config] split`.
    """

    published: PublishedResult
    before: float
    after: float
    model: str
    eval_set: str

    @property
    def comparable(self) -> bool:
        """Whether the published number applies: the published model on the published evaluation set."""
        return self.eval_set == self.published.eval_set and self.model == self.published.model

    @property
    def verdict(self) -> str:
        """`within tolerance`, `outside tolerance`, or `not applicable` (another model or evaluation set)."""
        if not self.comparable:
            return "not applicable"
        return "within tolerance" if self.within_tolerance else "outside tolerance"

    @property
    def difference(self) -> float:
        return self.after - self.published.value

    @property
    def tolerance(self) -> float:
        return TASKS[self.published.task].tolerance

    @property
    def within_tolerance(self) -> bool:
        return abs(self.difference) <= self.tolerance

    def to_json_dict(self) -> dict:
        return {
            "recipe": self.published.recipe,
            "metric": TASKS[self.published.task].metric_name,
            "before": self.before,
            "after": self.after,
            "published": self.published.value,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "within_tolerance": self.within_tolerance if self.comparable else None,
            "published_row": asdict(self.published),
        }


def render_report(reproduction: Reproduction, num_items: int, command: str) -> str:
    """The Markdown report: before, after, published, difference and whether it is within the sampling tolerance.

    Args:
        reproduction ([`Reproduction`]): The scores, the published row, the model and the evaluation set; when they
            are not the published ones, the report says that the comparison with the published number does not apply.
        num_items (`int`): Items evaluated.
        command (`str`): The command that produced it.
    """
    row, task = reproduction.published, TASKS[reproduction.published.task]
    model, eval_set = reproduction.model, reproduction.eval_set
    if reproduction.comparable:
        verdict = "within" if reproduction.within_tolerance else "outside"
        conclusion = f"The result is **{verdict}** the published number's sampling tolerance."
        if task.base_score is not None:
            conclusion += (
                f" The untrained model was reported at {task.base_score} on this set (before training here: "
                f"{reproduction.before:.2f})."
            )
    else:
        conclusion = (
            f"This run used `{model}` on `{eval_set}`, not the published `{row.model}` on `{row.eval_set}`: the "
            "comparison with the published number does not apply; before and after show whether training worked."
        )
    return "\n".join(
        [
            f"# Reproduction of `{row.recipe}`",
            "",
            f"{row.task}, {row.method}: `{model}` on `{eval_set}`, {task.metric_name} on {num_items} items.",
            "",
            "| before training | after training | published | difference | tolerance |",
            "|---|---|---|---|---|",
            f"| {reproduction.before:.2f} | {reproduction.after:.2f} | {row.value} "
            + f"| {reproduction.difference:+.2f} | +-{reproduction.tolerance:g} |",
            "",
            conclusion,
            "",
            f"Command: `{command}`",
            "",
        ]
    )


def write_predictions(path: str | Path, items: Sequence[Mapping]) -> None:
    """Writes one JSON line per evaluation item (prompt, references, predictions and scores)."""
    with open(path, "w") as file:
        file.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
