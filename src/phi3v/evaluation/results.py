"""Score the generated answers of several systems on the same rows and write one evaluation: metrics, predictions,
report and plots.

Written into the output directory:

- `metrics.json`: system name -> metrics, models first (each followed by its blank-image control), then baselines;
- `predictions.jsonl`: one line per evaluated row: its `id`, the `prompt` (the last user turn), the `references` and,
  for every generated system, the raw `answer` and its `scores` (the first is the headline metric; higher is better).
  Catalogue lines also carry the `truth` (the template's columns) and, per system, the `parsed` fields and `errors`;
- `report.md`: the table of every system side by side, how to read it, and the plots;
- `price_scatter_<system>.png` (catalogue with prices): predicted against true price, log axes;
- `skipped_rows.json` (only when rows were skipped): each row of the split that could not be asked (a malformed
  conversation, an empty answer, an unreadable image...), with its split, row index, field and problem
  (`phi3v.data.validation`); the metrics are over the rows asked, whose number is `num_samples`;
- `.phi3v-output.json`: marks the directory as this project's evaluation output (`phi3v.outputs`).
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from phi3v.data.validation import RowProblem
from phi3v.errors import UsageError
from phi3v.evaluation.report import plot_price_scatter, write_metrics_json, write_predictions_jsonl, write_report
from phi3v.outputs import mark_output_dir
from phi3v.tasks import Task
from phi3v.tasks.catalogue.metrics import CATEGORY_MEDIAN, GLOBAL_MEDIAN


EVALUATION_KIND = "evaluation"
SKIPPED_ROWS_NAME = "skipped_rows.json"


def blank_control_name(model_name: str) -> str:
    """The report column of a model's blank-image control, e.g. `"sft (grey image)"`."""
    return f"{model_name} (grey image)"


def check_model_names(names: Sequence[str], blank_control: bool) -> None:
    """Refuses model names that would share a report column: a baseline's (`global median`, `true-category median`),
    another model's blank-image control (`sft (grey image)`), or each other's. A collision would silently replace one
    column's answers and scores with another's.

    Raises:
        `UsageError`: naming the colliding names and the reserved ones.
    """
    reserved = {GLOBAL_MEDIAN: "a baseline", CATEGORY_MEDIAN: "a baseline"}
    if blank_control:
        reserved |= {blank_control_name(name): f"the blank-image control of {name!r}" for name in names}
    seen = set()
    for name in names:
        key = name.strip().casefold()
        clash = next((what for other, what in reserved.items() if other.casefold() == key), None)
        if clash is not None or key in seen or not key:
            what = clash or ("empty" if not key else "given twice")
            raise UsageError(
                f"--model name {name!r} is {what}: each column of the report needs its own name; pick another with "
                f"NAME=PATH (the names {sorted(reserved)} are taken)."
            )
        seen.add(key)


def write_results(
    output_dir: str | Path,
    task: Task,
    items: Sequence[Mapping],
    answers_by_system: Mapping[str, Sequence[str]],
    baselines: Mapping[str, Mapping] | None = None,
    title: str = "Evaluation report",
    notes: str | None = None,
    skipped: Sequence[RowProblem] = (),
) -> dict[str, dict]:
    """Scores every system's answers with the task's metrics and writes the files of the module docstring.

    Args:
        output_dir (`str` or `Path`): where to write; created if needed, and marked as this project's evaluation
            output (`phi3v.outputs`).
        task ([`~phi3v.tasks.Task`]): scores the answers and says what a prediction line holds.
        items (`Sequence[Mapping]`): the evaluated items (`Task.eval_items`), in answer order.
        answers_by_system (`Mapping[str, Sequence[str]]`): system name -> one generated answer per item.
        baselines (`Mapping[str, Mapping]`, *optional*): baseline name -> metrics (`Task.baselines`), after the models.
        title (`str`, *optional*, defaults to `"Evaluation report"`): the report's heading.
        notes (`str`, *optional*): text under the heading (checkpoints, split, settings).
        skipped (`Sequence[RowProblem]`, *optional*): the rows that could not be asked, written to `skipped_rows.json`.

    Returns:
        `dict[str, dict]`: system name -> metrics, as written to `metrics.json`.
    """
    output_dir = mark_output_dir(output_dir, EVALUATION_KIND, written_by="scripts/evaluate.py")
    metrics_by_system, plots = {}, []
    for name, answers in answers_by_system.items():
        metrics_by_system[name] = task.metrics(items, answers)
        prices = task.price_points(items, answers)
        if prices is not None:
            plot = output_dir / f"price_scatter_{_slug(name)}.png"
            plot_price_scatter(plot, *prices, title=name)
            plots.append(plot)
    metrics_by_system.update(baselines or {})
    write_predictions_jsonl(
        output_dir / "predictions.jsonl",
        (
            task.item_record(item)
            | {
                "predictions": {
                    name: task.answer_record(item, answers[index]) for name, answers in answers_by_system.items()
                }
            }
            for index, item in enumerate(items)
        ),
    )
    write_metrics_json(output_dir / "metrics.json", metrics_by_system)
    if skipped:
        record = {"rows_skipped": len(skipped), "skipped": [asdict(problem) for problem in skipped]}
        (output_dir / SKIPPED_ROWS_NAME).write_text(json.dumps(record, indent=2) + "\n")
    write_report(output_dir, metrics_by_system, title, notes, plots, explanation=task.metrics_explained)
    return metrics_by_system


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
