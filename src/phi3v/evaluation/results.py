"""Score the generated answers of several systems on the same rows and write one evaluation: metrics, predictions,
report and plots.

Written into the output directory:

- `metrics.json`: system name -> metrics (`score_predictions`), models first, then the baselines;
- `predictions.jsonl`: one line per product with its `product_code`, the `truth` and, for every generated system (a
  model or its blank-image control), the raw `answer`, the `parsed` fields and the per-field `errors`;
- `report.md`: the table of every system side by side, how to read it, and the plots;
- `price_scatter_<system>.png`: predicted against true price, log axes, one per generated system;
- `.phi3v-output.json`: marks the directory as this project's evaluation output (`phi3v.outputs`).
"""

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from phi3v.evaluation.baselines import global_median_predictions, true_category_median_predictions
from phi3v.evaluation.metrics import build_records, normalise_text, normalised_edit_similarity, score_predictions
from phi3v.evaluation.parsing import ParsedAnswer, parse_answer
from phi3v.evaluation.report import plot_price_scatter, write_metrics_json, write_predictions_jsonl, write_report
from phi3v.outputs import mark_output_dir


EVALUATION_KIND = "evaluation"


GLOBAL_MEDIAN = "global median"
CATEGORY_MEDIAN = "true-category median"


def blank_control_name(model_name: str) -> str:
    """The report column of a model's blank-image control, e.g. `"sft (grey image)"`."""
    return f"{model_name} (grey image)"


def truth(row: Mapping) -> dict:
    """The fields an answer is scored against, under the names `ParsedAnswer` uses."""
    return {"title": row["title"], "category": row["category3_code"], "price": row["full_price"]}


def answer_errors(row: Mapping, parsed: ParsedAnswer) -> dict:
    """Per-product errors, counted as `score_predictions` counts them (a missing price is a prediction of $0).

    Args:
        row (`Mapping`): the dataset row, with `title`, `category3_code` and `full_price`.
        parsed (`ParsedAnswer`): the fields read from the answer.

    Returns:
        `dict`: `title_exact_match` and `category_correct` (`bool`), `title_anls` (`float` in [0, 1]),
        `price_abs_error` (dollars) and `price_pct_error` (a fraction; 1.0 when no price was read).
    """
    true_price = float(row["full_price"])
    predicted_price = 0.0 if parsed.price is None else parsed.price
    return {
        "title_exact_match": _same_text(parsed.title, row["title"]),
        "title_anls": 0.0 if parsed.title is None else normalised_edit_similarity(parsed.title, row["title"]),
        "category_correct": _same_text(parsed.category, row["category3_code"]),
        "price_abs_error": abs(predicted_price - true_price),
        "price_pct_error": abs(predicted_price - true_price) / true_price,
    }


def baseline_metrics(train_rows: Sequence[Mapping], rows: Sequence[Mapping]) -> dict[str, dict]:
    """Metrics of the image-free baselines on `rows`: the training median price, and the true category's median.

    Args:
        train_rows (`Sequence[Mapping]`): training rows with `category3_code` and `full_price`.
        rows (`Sequence[Mapping]`): the evaluated rows.
    """
    return {
        GLOBAL_MEDIAN: score_predictions(build_records(rows, global_median_predictions(train_rows, rows))),
        CATEGORY_MEDIAN: score_predictions(build_records(rows, true_category_median_predictions(train_rows, rows))),
    }


def write_results(
    output_dir: str | Path,
    rows: Sequence[Mapping],
    answers_by_system: Mapping[str, Sequence[str]],
    baselines: Mapping[str, Mapping],
    title: str = "Evaluation report",
    notes: str | None = None,
) -> dict[str, dict]:
    """Parses and scores every generated system, then writes the files listed in the module docstring.

    Args:
        output_dir (`str` or `Path`): where to write; created if needed (and marked as this project's evaluation
            output, see `phi3v.outputs`), existing files of the same names replaced.
        rows (`Sequence[Mapping]`): the evaluated rows (without images), in the order of the answers.
        answers_by_system (`Mapping[str, Sequence[str]]`): system name -> one generated answer per row, in the
            column order wanted.
        baselines (`Mapping[str, Mapping]`): baseline name -> metrics, e.g. from `baseline_metrics`.
        title (`str`, *optional*, defaults to `"Evaluation report"`): the report's heading.
        notes (`str`, *optional*): text under the heading (checkpoints, split, settings).

    Returns:
        `dict[str, dict]`: system name -> metrics, as written to `metrics.json`.
    """
    output_dir = mark_output_dir(output_dir, EVALUATION_KIND, written_by="phi3v.evaluation.results.write_results")
    metrics_by_system, plots = {}, []
    parsed_by_system = {
        name: [parse_answer(answer) for answer in answers] for name, answers in answers_by_system.items()
    }
    for name, parsed in parsed_by_system.items():
        metrics_by_system[name] = score_predictions(build_records(rows, parsed))
        plot = output_dir / f"price_scatter_{_slug(name)}.png"
        plot_price_scatter(plot, [row["full_price"] for row in rows], [p.price for p in parsed], title=name)
        plots.append(plot)
    metrics_by_system.update(baselines)

    write_predictions_jsonl(
        output_dir / "predictions.jsonl",
        (
            {
                "product_code": row["product_code"],
                "truth": truth(row),
                "predictions": {
                    name: {
                        "answer": answers_by_system[name][index],
                        "parsed": dataclasses.asdict(parsed[index]),
                        "errors": answer_errors(row, parsed[index]),
                    }
                    for name, parsed in parsed_by_system.items()
                },
            }
            for index, row in enumerate(rows)
        ),
    )
    write_metrics_json(output_dir / "metrics.json", metrics_by_system)
    write_report(output_dir, metrics_by_system, title=title, notes=notes, plots=plots)
    return metrics_by_system


def _same_text(predicted: str | None, true: str) -> bool:
    return predicted is not None and normalise_text(predicted) == normalise_text(true)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
