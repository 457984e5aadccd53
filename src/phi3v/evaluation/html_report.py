"""Write `report.html`: one self-contained page with the metrics table, the plots, and a gallery of the test photos
with the truth and every model's answer, the worst answers first.

Everything is embedded (plots as PNG, photos as JPEG thumbnails, both base64), so the single file can be mailed or
attached to a run. The gallery holds at most `gallery_size` products and shows thumbnails, never the originals, so
the file stays light whatever the size of the split.

Two kinds of `predictions.jsonl` lines are understood:

- catalogue lines, `{"id", "truth": {column: value}, "references", "predictions": {system: {"answer", "parsed",
  "errors"}}}`: worst first means the largest `price_pct_error` of the first system (without a price in the template,
  the most fields wrong);
- generic lines, `{"id", "prompt", "references": [...], "predictions": {system: {"answer", "scores": {...}}}}`: the
  first key of `scores` is the headline metric (higher is better), and worst first means its lowest value for the
  first system.

Example:

```python
>>> lines = read_predictions_jsonl("outputs/demo-eval/predictions.jsonl")
>>> write_html_report("outputs/demo-eval", metrics, lines, [[image] for image in test_split["image"]])
PosixPath('outputs/demo-eval/report.html')
```
"""

import base64
import html
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from phi3v.data.image_columns import load_image
from phi3v.evaluation.report import format_metric


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table.metrics { border-collapse: collapse; margin: 1em 0; }
table.metrics th, table.metrics td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
table.metrics td { text-align: right; font-variant-numeric: tabular-nums; }
table.metrics td:first-child, table.metrics th:first-child { text-align: left; }
.plots img { max-width: 380px; margin: 0.5em; border: 1px solid #eee; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.7em; }
.card img { display: block; max-width: 100%; max-height: 256px; margin: 0 auto 0.5em; }
.card h3 { font-size: 0.95em; margin: 0 0 0.4em; }
.truth { background: #eef6ee; padding: 0.3em 0.5em; border-radius: 4px; }
.answer { margin-top: 0.5em; }
.answer pre { white-space: pre-wrap; word-break: break-word; margin: 0.2em 0; font-size: 0.85em; }
.scores { color: #555; font-size: 0.85em; }
"""


def read_predictions_jsonl(path: str | os.PathLike) -> list[dict]:
    """The lines of a `predictions.jsonl`, as dicts."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_html_report(
    output_dir: str | os.PathLike,
    metrics_by_system: Mapping[str, Mapping[str, float | int | None]],
    predictions: Sequence[Mapping],
    images: Sequence,
    title: str = "Evaluation report",
    notes: str | None = None,
    gallery_size: int = 48,
    thumbnail_size: int = 256,
    plots: Sequence[str | os.PathLike] | None = None,
) -> Path:
    """Write `report.html` into `output_dir`: metrics table, plots, and a gallery of the worst answers first.

    Args:
        output_dir (`str` or `os.PathLike`): the evaluation's directory; created if needed.
        metrics_by_system (`Mapping[str, Mapping]`): system name -> metrics, in column order (as for `report.md`).
        predictions (`Sequence[Mapping]`): the lines of `predictions.jsonl` (see the module docstring).
        images (`Sequence[list]`): the images of each line, in order (PIL images or undecoded dataset cells; the
            first is shown, and only for the lines the gallery shows).
        title (`str`, *optional*, defaults to `"Evaluation report"`): the page's heading.
        notes (`str`, *optional*): text under the heading, as given to `report.md` (`code` spans and blank-line
            paragraphs are kept).
        gallery_size (`int`, *optional*, defaults to 48): the most products shown in the gallery.
        thumbnail_size (`int`, *optional*, defaults to 256): the longest side of a gallery thumbnail, in pixels.
        plots (`Sequence`, *optional*): PNG files to embed; by default the `price_scatter_*.png` of `output_dir`.

    Returns:
        `Path`: the path of `report.html`.
    """
    if len(predictions) != len(images):
        raise ValueError(f"Got {len(predictions)} prediction lines but {len(images)} images.")
    if gallery_size < 0 or thumbnail_size < 1:
        raise ValueError(f"gallery_size must be >= 0 and thumbnail_size >= 1, got {gallery_size}, {thumbnail_size}.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plots = sorted(output_dir.glob("price_scatter_*.png")) if plots is None else [Path(plot) for plot in plots]

    order, ranking = _worst_first(predictions)
    shown = order[:gallery_size]
    sections = [f"<h1>{_text(title)}</h1>"]
    if notes:
        sections.append(_notes_html(notes))
    sections += ["<h2>Metrics</h2>", _metrics_table(metrics_by_system)]
    if plots:
        images_html = "".join(
            f'<img alt="{_text(plot.stem)}" src="data:image/png;base64,{_base64(plot.read_bytes())}">'
            for plot in plots
        )
        sections += ["<h2>Plots</h2>", f'<div class="plots">{images_html}</div>']
    sections += [
        "<h2>Gallery</h2>",
        f"<p>{len(shown)} of {len(predictions)} products, {_text(ranking)}.</p>",
        '<div class="gallery">'
        + "".join(_card(predictions[index], images[index], thumbnail_size) for index in shown)
        + "</div>",
    ]
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_text(title)}</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    report_path = output_dir / "report.html"
    report_path.write_text(page, encoding="utf-8")
    return report_path


def _worst_first(predictions: Sequence[Mapping]) -> tuple[list[int], str]:
    """Line indices, worst answer of the first system first, and how they were ranked, for the page."""
    if not predictions or not predictions[0]["predictions"]:
        return list(range(len(predictions))), "in the order of the split"
    system = next(iter(predictions[0]["predictions"]))
    if "truth" in predictions[0]:
        errors = [line["predictions"][system]["errors"] for line in predictions]
        if "price_pct_error" in errors[0]:
            order = sorted(range(len(predictions)), key=lambda index: -errors[index]["price_pct_error"])
            return order, f"largest price error of {system} first"
        wrong = [sum(value is False for value in error.values()) for error in errors]
        return sorted(
            range(len(predictions)), key=lambda index: -wrong[index]
        ), f"most fields wrong for {system} first"
    scores = [line["predictions"][system]["scores"] for line in predictions]
    metric = next(iter(scores[0]), None)
    if metric is None:
        return list(range(len(predictions))), "in the order of the split"
    # An undefined score (None) says nothing about how bad the answer is: those go last.
    order = sorted(range(len(predictions)), key=lambda index: (scores[index][metric] is None, scores[index][metric]))
    return order, f"lowest {metric} of {system} first"


def _metrics_table(metrics_by_system: Mapping[str, Mapping]) -> str:
    """The metrics as in `format_report_table`: a row per metric, a column per system, `n/a` where undefined."""
    metric_names = list(dict.fromkeys(name for metrics in metrics_by_system.values() for name in metrics))
    header = "".join(f"<th>{_text(name)}</th>" for name in ["metric", *metrics_by_system])
    rows = [
        f"<tr><td>{_text(name)}</td>"
        + "".join(
            f"<td>{_text(format_metric(name, metrics.get(name)))}</td>" for metrics in metrics_by_system.values()
        )
        + "</tr>"
        for name in metric_names
    ]
    return f'<table class="metrics"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _card(line: Mapping, image, thumbnail_size: int) -> str:
    """One product of the gallery: its thumbnail, the truth, and each system's answer with its scores."""
    name = line.get("id", "")
    if "truth" in line:
        truth_html = " &middot; ".join(_text(value) for value in line["truth"].values())
    else:
        prompt = f"<div class='scores'>{_text(line['prompt'])}</div>" if line.get("prompt") else ""
        truth_html = prompt + "<br>".join(_text(reference) for reference in line.get("references", []))
    answers = "".join(
        f'<div class="answer"><b>{_text(system)}</b><pre>{_text(prediction["answer"])}</pre>'
        f'<div class="scores">{_text(_scores_line(prediction))}</div></div>'
        for system, prediction in line["predictions"].items()
    )
    picture = (
        f'<img alt="{_text(name)}" src="data:image/jpeg;base64,{_thumbnail(load_image(image[0]), thumbnail_size)}">'
        if image
        else "<p class='scores'>(no image)</p>"
    )
    return f'<div class="card">{picture}<h3>{_text(name)}</h3><div class="truth">{truth_html}</div>{answers}</div>'


def _scores_line(prediction: Mapping) -> str:
    if "errors" in prediction:
        return " · ".join(f"{name} {_error_text(name, value)}" for name, value in prediction["errors"].items())
    return " · ".join(
        f"{metric} {'n/a' if value is None else f'{value:.3f}'}" for metric, value in prediction["scores"].items()
    )


def _error_text(name: str, value) -> str:
    if isinstance(value, bool):
        return "right" if value else "wrong"
    if name == "price_pct_error":
        return f"{value:.1%}"
    return f"{value:,.2f}"


def _thumbnail(image, size: int) -> str:
    thumbnail = image.convert("RGB")  # a copy, also of an RGB image, so the caller's photo is left as it is
    thumbnail.thumbnail((size, size))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="JPEG", quality=85)
    return _base64(buffer.getvalue())


def _notes_html(notes: str) -> str:
    """Notes in the report's Markdown subset: blank lines separate paragraphs, `- ` lines make a list, `code` spans
    stay code."""
    blocks = []
    for paragraph in re.split(r"\n\s*\n", notes.strip()):
        lines = [_inline(line) for line in paragraph.strip().splitlines()]
        if lines and all(line.startswith("- ") for line in lines):
            blocks.append("<ul>" + "".join(f"<li>{line[2:]}</li>" for line in lines) + "</ul>")
        elif lines:
            blocks.append("<p>" + "<br>".join(lines) + "</p>")
    return "".join(blocks)


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _text(text))


def _text(value) -> str:
    return html.escape(str(value), quote=True)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
