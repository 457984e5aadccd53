"""The forgetting report: the cards' benchmarks for the base model and each fine-tune, the differences, and the
card's published number for the base, in one table (`report.md`, `metrics.json`, optionally W&B).

A row per benchmark. Columns: the card's number, the base model's score, `base - card` and whether it is within the
tolerance of a reproduction (+-1.5 points, the largest gap lmms-eval's reproduction showed), then each fine-tune's
score and its difference from the base. The tolerance is only judged on a whole split (no `--limit`), for the card
of the base's checkpoint, and where lmms-eval's task measures what the card measured.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from phi3v.card_benchmarks.published import BENCHMARKS_BY_TASK, TOLERANCE


@dataclass(frozen=True)
class ForgettingRow:
    """One benchmark of the report; scores in points, `None` where undefined."""

    benchmark: str
    task: str
    published: float | None
    base: float | None
    base_minus_published: float | None
    within_tolerance: bool | None
    why_not_judged: str
    fine_tuned: dict
    differences: dict


def _difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else round(value - reference, 2)


def _why_not_judged(benchmark, published: float | None, gap: float | None, limit: int | None) -> str:
    """Why the base's score is not held to the card's within the tolerance, or `""` when it is."""
    if published is None:
        return "no card given for the base"
    if limit is not None:
        return f"--limit {limit}: not the whole split"
    if not benchmark.comparable:
        return benchmark.note
    if gap is None:
        return "no score"
    return ""


def forgetting_rows(scores: dict[str, dict], card: str | None, limit: int | None) -> list[ForgettingRow]:
    """The report's rows.

    Args:
        scores (`dict[str, dict]`): model name -> task -> score in points; the first model is the base.
        card (`str`, *optional*): the model card (`published.CARDS`) of the base's checkpoint, for the published column.
        limit (`int`, *optional*): the document limit of the run; with one, the tolerance is not judged.
    """
    (_, base_scores), *fine_tunes = scores.items()
    rows = []
    for task, base in base_scores.items():
        benchmark = BENCHMARKS_BY_TASK[task]
        published = benchmark.published.get(card) if card else None
        gap = _difference(base, published)
        why = _why_not_judged(benchmark, published, gap, limit)
        rows.append(
            ForgettingRow(
                benchmark=benchmark.name,
                task=task,
                published=published,
                base=base,
                base_minus_published=gap,
                within_tolerance=None if why else abs(gap) <= TOLERANCE,
                why_not_judged=why,
                fine_tuned={name: model_scores[task] for name, model_scores in fine_tunes},
                differences={name: _difference(model_scores[task], base) for name, model_scores in fine_tunes},
            )
        )
    return rows


def _points(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def render_table(rows: list[ForgettingRow], base_name: str) -> str:
    """The Markdown table of the report."""
    fine_tunes = list(rows[0].fine_tuned) if rows else []
    header = ["benchmark", "card", base_name, f"{base_name} - card", f"within +-{TOLERANCE}"]
    for name in fine_tunes:
        header += [name, f"{name} - {base_name}"]
    lines = ["| " + " | ".join(header) + " |", "| :-- | " + " | ".join("--:" for _ in header[1:]) + " |"]
    for row in rows:
        verdict = "n/a" if row.within_tolerance is None else "yes" if row.within_tolerance else "NO"
        cells = [row.benchmark, _points(row.published), _points(row.base), _points(row.base_minus_published, True)]
        cells.append(verdict)
        for name in fine_tunes:
            cells += [_points(row.fine_tuned[name]), _points(row.differences[name], True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(output_dir: str | Path, rows: list[ForgettingRow], settings: dict) -> Path:
    """Writes `report.md` and `metrics.json` into `output_dir`.

    Args:
        output_dir (`str` or `Path`): the report's directory (checked and marked by the script).
        rows (`list[ForgettingRow]`): from `forgetting_rows`.
        settings (`dict`): what was run: `models` (name -> path, base first), `card`, `limit`, `command`.

    Returns:
        `Path`: the path of `report.md`.
    """
    output_dir = Path(output_dir)
    base_name = next(iter(settings["models"]))
    not_judged = sorted({row.why_not_judged for row in rows if row.why_not_judged})
    documents = "all" if settings["limit"] is None else f"the first {settings['limit']}"
    notes = [
        "# Benchmarks before and after fine-tuning\n",
        "Models: " + ", ".join(f"`{name}` = `{path}`" for name, path in settings["models"].items()) + ".",
        (
            f"Card: {settings['card'] or 'none'}. Documents per benchmark: {documents}. Scores in points, by "
            "lmms-eval's own metrics; a negative difference is what fine-tuning cost.\n"
        ),
        render_table(rows, base_name),
        *(f"- not judged: {reason}" for reason in not_judged),
        f"\nCommand: `{settings['command']}`\n",
    ]
    report = output_dir / "report.md"
    report.write_text("\n".join(notes))
    metrics = {**settings, "tolerance": TOLERANCE, "benchmarks": [asdict(row) for row in rows]}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return report


def log_to_wandb(output_dir: str | Path, rows: list[ForgettingRow], settings: dict) -> str:
    """Logs the report to a new W&B run (project and entity from `WANDB_PROJECT` / `WANDB_ENTITY`): every score in
    the summary, the table, and the report's directory as an artifact. Returns the run's id."""
    import wandb  # only a run that asks for W&B pays for importing it

    run = wandb.init(job_type="benchmarks", config=settings)
    columns = ["benchmark", "task", "published", "base", "base_minus_published", "within_tolerance"]
    fine_tunes = list(rows[0].fine_tuned) if rows else []
    table = wandb.Table(
        columns=columns + [f"{name}{suffix}" for name in fine_tunes for suffix in ("", "_minus_base")],
        data=[
            [getattr(row, column) for column in columns]
            + [value for name in fine_tunes for value in (row.fine_tuned[name], row.differences[name])]
            for row in rows
        ],
    )
    base_name = next(iter(settings["models"]))
    run.summary.update(
        {f"{row.task}/{base_name}": row.base for row in rows}
        | {f"{row.task}/{name}": row.fine_tuned[name] for row in rows for name in fine_tunes}
    )
    run.log({"benchmarks": table})
    artifact = wandb.Artifact(name=f"benchmarks-{run.id}", type="evaluation")
    artifact.add_dir(str(output_dir))
    run.log_artifact(artifact)
    run.finish()
    return run.id
