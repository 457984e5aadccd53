"""Write evaluation results: a Markdown report comparing models and baselines, JSON/JSONL files, price scatter plots."""

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure


# Fractions shown as percentages; every other float is shown with three decimals, except the money below.
_PERCENT_METRICS = {
    "parse_rate",
    "exact_match",
    "accuracy",
    "title_exact_match",
    "category_accuracy",
    "price_coverage",
    "price_mape",
    "price_median_ape",
    "price_within_10pct",
    "price_within_25pct",
    "price_mape_parsed",
}
_DOLLAR_METRICS = {"price_mae"}


def format_metric(name: str, value: float | None) -> str:
    """Format one metric value for the report table.

    Args:
        name (`str`): The metric name, which decides the unit (percentage, dollars, plain number).
        value (`float`, `int` or `None`): The value; `None` means the metric is undefined for that model.

    Returns:
        `str`: e.g. `"87.5%"`, `"$1,290.00"`, `"0.412"`, `"200"` or `"n/a"`.
    """
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if name in _PERCENT_METRICS or name.endswith(("_exact_match", "accuracy")):
        return f"{value:.1%}"
    if name in _DOLLAR_METRICS:
        return f"${value:,.2f}"
    return f"{value:.3f}"


def format_report_table(metrics_by_model: Mapping[str, Mapping[str, float | int | None]]) -> str:
    """A Markdown table with one column per model or baseline and one row per metric, padded to read on a terminal.

    Args:
        metrics_by_model (`Mapping[str, Mapping]`):
            Model or baseline name -> its metrics (e.g. from `score_predictions`), in the column order wanted.
            Metrics appear in the order first seen; one missing for a model shows as `n/a`.

    Returns:
        `str`: The table, ending with a newline.
    """
    metric_names = list(dict.fromkeys(name for metrics in metrics_by_model.values() for name in metrics))
    header = ["metric", *metrics_by_model]
    body = [
        [name, *(format_metric(name, metrics.get(name)) for metrics in metrics_by_model.values())]
        for name in metric_names
    ]
    widths = [max(len(row[column]) for row in [header, *body]) for column in range(len(header))]
    separator = [":" + "-" * (widths[0] - 1), *("-" * (width - 1) + ":" for width in widths[1:])]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cells[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)),
        ]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(header), line(separator), *(line(row) for row in body)]) + "\n"


def write_report(
    output_dir: str | os.PathLike,
    metrics_by_model: Mapping[str, Mapping[str, float | int | None]],
    title: str = "Evaluation report",
    notes: str | None = None,
    plots: Sequence[str | os.PathLike] = (),
    explanation: str | None = None,
) -> Path:
    """Write `report.md`: the metrics table of every model and baseline, how to read it, and the plots.

    Args:
        output_dir (`str` or `os.PathLike`): Directory to write into; created if needed.
        metrics_by_model (`Mapping[str, Mapping]`): Model or baseline name -> its metrics, as for `format_report_table`.
        title (`str`, *optional*, defaults to `"Evaluation report"`): The report's heading.
        notes (`str`, *optional*): Free text placed under the heading, e.g. the checkpoints and test split used.
        plots (`Sequence`, *optional*, defaults to `()`):
            Images to embed, e.g. from `plot_price_scatter`; linked relative to `output_dir` when inside it.
        explanation (`str`, *optional*): how to read the metrics, placed under the table.

    Returns:
        `Path`: The path of `report.md`.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sections = [f"# {title}\n"]
    if notes:
        sections.append(notes.strip() + "\n")
    sections.append(format_report_table(metrics_by_model))
    if explanation:
        sections.append(explanation)
    if plots:
        sections.append("## Price predictions\n")
        for plot in plots:
            link = Path(os.path.relpath(Path(plot).resolve(), output_dir.resolve())).as_posix()
            sections.append(f"![{Path(plot).stem}]({link})\n")
    report_path = output_dir / "report.md"
    report_path.write_text("\n".join(sections), encoding="utf-8")
    return report_path


def write_predictions_jsonl(path: str | os.PathLike, records: Iterable[Mapping]) -> None:
    """Write one JSON object per record; dataclass values such as `ParsedAnswer` become nested objects.

    Args:
        path (`str` or `os.PathLike`): The file to write; parent directories are created.
        records (`Iterable[Mapping]`): The records, e.g. from `build_records` plus the generated text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        for record in records:
            record = {key: _to_json(value) for key, value in record.items()}
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_metrics_json(path: str | os.PathLike, metrics: Mapping) -> None:
    """Write metrics (one model's, or name -> metrics for several) as indented JSON.

    Args:
        path (`str` or `os.PathLike`): The file to write; parent directories are created.
        metrics (`Mapping`): JSON-serialisable metrics.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def plot_price_scatter(
    path: str | os.PathLike,
    true_prices: Sequence[float],
    predicted_prices: Sequence[float | None],
    title: str,
) -> None:
    """Save a log-log scatter of predicted against true prices, with the y = x line of perfect predictions.

    Missing and non-positive predicted prices cannot sit on log axes; they are left out and counted in the title.

    Args:
        path (`str` or `os.PathLike`): The PNG to write; parent directories are created.
        true_prices (`Sequence[float]`): True full prices.
        predicted_prices (`Sequence[float | None]`): Predicted full prices, `None` where none was read.
        title (`str`): The plot title, e.g. the model name.
    """
    if len(true_prices) != len(predicted_prices):
        raise ValueError(f"Got {len(true_prices)} true prices but {len(predicted_prices)} predicted prices.")
    pairs = [
        (true, predicted)
        for true, predicted in zip(true_prices, predicted_prices, strict=True)
        if predicted is not None and predicted > 0 and true > 0
    ]
    left_out = len(true_prices) - len(pairs)
    # A bare Figure renders with Agg and touches no global pyplot state, so this works headless and in threads.
    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.add_subplot()
    axes.set_xscale("log")
    axes.set_yscale("log")
    if pairs:
        xs, ys = zip(*pairs, strict=True)
        axes.scatter(xs, ys, s=10, alpha=0.5, label="test samples")
        low, high = min(*xs, *ys), max(*xs, *ys)
        axes.plot([low, high], [low, high], color="black", linewidth=1, label="y = x")
        axes.legend(loc="upper left")
    axes.set_xlabel("True full price ($)")
    axes.set_ylabel("Predicted full price ($)")
    axes.set_title(
        title if left_out == 0 else f"{title}\n({left_out} of {len(true_prices)} without a price, not shown)"
    )
    axes.grid(True, which="both", alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def _to_json(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
