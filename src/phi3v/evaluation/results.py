"""Score the generated answers of several systems on the same rows and write one evaluation: metrics, predictions,
report and plots.

Written into the output directory:

- `metrics.json`: system name -> metrics, models first (each followed by its blank-image control), then baselines;
- `predictions.jsonl`: one line per evaluated row: its `id`, the `prompt` (the last user turn), the `references` and,
  for every generated system, the raw `answer` and its `scores` (the first is the headline metric; higher is better).
  Catalogue lines also carry the `truth` (the template's columns) and, per system, the `parsed` fields and `errors`;
- `report.md`: the table of every system side by side, how to read it, and the plots;
- `price_scatter_<system>.png` (catalogue with prices): predicted against true price, log axes;
- `.phi3v-output.json`: marks the directory as this project's evaluation output (`phi3v.outputs`).
"""

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from phi3v.errors import UsageError
from phi3v.evaluation.report import plot_price_scatter, write_metrics_json, write_predictions_jsonl, write_report
from phi3v.outputs import mark_output_dir
from phi3v.tasks.catalogue import PRICE_FIELD, AnswerTemplate
from phi3v.tasks.catalogue.metrics import CATEGORY_MEDIAN, GLOBAL_MEDIAN, answer_errors, score_catalogue
from phi3v.text_metrics import answer_scores


EVALUATION_KIND = "evaluation"
CONVERSATION_METRICS_EXPLAINED = """\
Each answer is compared with its reference(s), the best over them: `exact_match` after stripping spaces and trailing
dots, casefolding and collapsing whitespace on both sides; `edit_similarity` is 1 - normalised Levenshtein distance
of those normalised strings. Task metrics, when the task has one, follow its published definition.
"""

CATALOGUE_METRICS_EXPLAINED = """\
Rates and percentage errors are over all test samples. Text fields are compared casefolded with whitespace collapsed;
a missing value counts as wrong. A missing price counts as a prediction of $0 (100% error, never within a tolerance),
so `price_coverage` says how often a price was read and `price_mape_parsed` is the MAPE over those answers only.
`title_anls` is 1 - normalised Levenshtein distance, 0 when the distance is 0.5 or more. `price_rmse_log` is the RMSE
of log(1 + price). Baselines predict a price only: "n/a" marks what they do not predict (the true-category median is
given the category, so its category accuracy is 100% by construction).
"""


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


def write_conversation_results(
    output_dir: str | Path,
    items: Sequence[Mapping],
    answers_by_system: Mapping[str, Sequence[str]],
    task_metric: tuple[str, Callable[[str, list[str]], float]] | None = None,
    title: str = "Evaluation report",
    notes: str | None = None,
) -> dict[str, dict]:
    """Scores every system's answers against each item's references and writes the files of the module docstring.

    Args:
        output_dir (`str` or `Path`): where to write; created if needed, and marked as this project's evaluation
            output (`phi3v.outputs`).
        items (`Sequence[Mapping]`): the evaluated items (`id`, `prompt` messages, `references`), in answer order.
        answers_by_system (`Mapping[str, Sequence[str]]`): system name -> one generated answer per item.
        task_metric (`tuple`, *optional*): `(name, metric(prediction, references))` of the task, e.g. ANLS; it comes
            first in the scores and the table.
        title (`str`, *optional*, defaults to `"Evaluation report"`): the report's heading.
        notes (`str`, *optional*): text under the heading (checkpoints, split, settings).

    Returns:
        `dict[str, dict]`: system name -> metrics, as written to `metrics.json`.
    """
    output_dir = mark_output_dir(output_dir, EVALUATION_KIND, written_by="scripts/evaluate.py")
    scores_by_system = {}
    for name, answers in answers_by_system.items():
        scores_by_system[name] = [
            _item_scores(answer, list(item["references"]), task_metric)
            for answer, item in zip(answers, items, strict=True)
        ]
    metrics_by_system = {
        name: {"num_samples": len(items)}
        | {metric: float(np.mean([s[metric] for s in scores])) for metric in scores[0]}
        for name, scores in scores_by_system.items()
    }
    write_predictions_jsonl(
        output_dir / "predictions.jsonl",
        (
            {
                "id": item["id"],
                "prompt": item["prompt"][-1]["content"],
                "references": list(item["references"]),
                "predictions": {
                    name: {"answer": answers_by_system[name][index], "scores": scores_by_system[name][index]}
                    for name in answers_by_system
                },
            }
            for index, item in enumerate(items)
        ),
    )
    write_metrics_json(output_dir / "metrics.json", metrics_by_system)
    write_report(output_dir, metrics_by_system, title, notes, explanation=CONVERSATION_METRICS_EXPLAINED)
    return metrics_by_system


def write_catalogue_results(
    output_dir: str | Path,
    rows: Sequence[Mapping],
    answers_by_system: Mapping[str, Sequence[str]],
    baselines: Mapping[str, Mapping],
    template: AnswerTemplate,
    title: str = "Evaluation report",
    notes: str | None = None,
) -> dict[str, dict]:
    """Parses answers with the recipe's template, scores them as the catalogue task does, and writes the files of the
    module docstring, baselines included.

    Args:
        output_dir (`str` or `Path`): where to write; created if needed, and marked as this project's evaluation
            output (`phi3v.outputs`).
        rows (`Sequence[Mapping]`): the evaluated catalogue rows (without images), in answer order.
        answers_by_system (`Mapping[str, Sequence[str]]`): system name -> one generated answer per row.
        baselines (`Mapping[str, Mapping]`): baseline name -> metrics (`phi3v.tasks.catalogue.metrics`).
        template ([`AnswerTemplate`]): the answer template the models were trained with.
        title (`str`, *optional*, defaults to `"Evaluation report"`): the report's heading.
        notes (`str`, *optional*): text under the heading.

    Returns:
        `dict[str, dict]`: system name -> metrics, as written to `metrics.json`.
    """
    output_dir = mark_output_dir(output_dir, EVALUATION_KIND, written_by="scripts/evaluate.py")
    fields = template.fields
    parsed_by_system = {name: [template.parse(a) for a in answers] for name, answers in answers_by_system.items()}
    metrics_by_system, plots = {}, []
    for name, parsed in parsed_by_system.items():
        metrics_by_system[name] = score_catalogue(rows, parsed, fields)
        if PRICE_FIELD in fields:
            plot = output_dir / f"price_scatter_{_slug(name)}.png"
            plot_price_scatter(plot, [row[PRICE_FIELD] for row in rows], [p[PRICE_FIELD] for p in parsed], title=name)
            plots.append(plot)
    metrics_by_system.update(baselines)
    write_predictions_jsonl(
        output_dir / "predictions.jsonl",
        (
            {
                "id": str(row.get("product_code", index)),
                "truth": {field: row[field] for field in fields},
                "references": [template.render(row)],
                "predictions": {
                    name: {
                        "answer": answers_by_system[name][index],
                        "parsed": parsed[index],
                        "errors": answer_errors(row, parsed[index], fields),
                    }
                    for name, parsed in parsed_by_system.items()
                },
            }
            for index, row in enumerate(rows)
        ),
    )
    write_metrics_json(output_dir / "metrics.json", metrics_by_system)
    write_report(output_dir, metrics_by_system, title, notes, plots, explanation=CATALOGUE_METRICS_EXPLAINED)
    return metrics_by_system


def _item_scores(answer: str, references: list[str], task_metric) -> dict[str, float]:
    scores = {}
    if task_metric is not None:
        name, metric = task_metric
        scores[name] = float(metric(answer, references))
    return scores | answer_scores(answer, references)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
