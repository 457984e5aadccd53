"""Log a finished evaluation to Weights & Biases: metrics, the report table, the plots, a table of every row with its
image and answers, and the output directory as an artifact.

The project and entity come from the environment (`WANDB_PROJECT`, `WANDB_ENTITY`), never from code; with
`WANDB_MODE=offline` everything is written under `./wandb` without a login, for a later `wandb sync`.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import wandb

from phi3v.data.image_columns import load_image


THUMBNAIL_SIZE = 336  # images are shown, not re-used: a thumbnail keeps the run small


def log_evaluation(
    output_dir: str | Path,
    metrics_by_system: Mapping[str, Mapping],
    images: Sequence,
    config: Mapping,
) -> str:
    """Logs what `write_results` wrote in `output_dir`, plus the product images, to a new W&B run.

    Args:
        output_dir (`str` or `Path`): the evaluation's output directory (`predictions.jsonl`, plots, report).
        metrics_by_system (`Mapping[str, Mapping]`): system name -> metrics, as `write_results` returned them.
        images (`Sequence[list]`): the images of each line of `predictions.jsonl`, in order (cells or PIL images).
        config (`Mapping`): the run's settings (the script's arguments), stored as the W&B run config.

    Returns:
        `str`: the run's id.
    """
    output_dir = Path(output_dir)
    run = wandb.init(job_type="evaluation", config=dict(config))
    run.summary.update(
        {f"{name}/{metric}": value for name, metrics in metrics_by_system.items() for metric, value in metrics.items()}
    )
    metric_names = list(dict.fromkeys(metric for metrics in metrics_by_system.values() for metric in metrics))
    report = wandb.Table(
        columns=["metric", *metrics_by_system],
        data=[[metric, *(m.get(metric) for m in metrics_by_system.values())] for metric in metric_names],
    )
    plots = {f"price_scatter/{plot.stem}": wandb.Image(str(plot)) for plot in sorted(output_dir.glob("*.png"))}
    predictions = _predictions_table(output_dir / "predictions.jsonl", images)
    run.log({"report": report, "predictions": predictions, **plots})

    artifact = wandb.Artifact(name=f"evaluation-{run.id}", type="evaluation")
    artifact.add_dir(str(output_dir))
    run.log_artifact(artifact)
    run.finish()
    return run.id


def _predictions_table(predictions_path: Path, images: Sequence[list]) -> wandb.Table:
    """One row per evaluated item: id, first image, reference, then each system's answer and its scores (or, for a
    catalogue, its per-field errors)."""
    lines = [json.loads(line) for line in predictions_path.read_text(encoding="utf-8").splitlines()]
    if len(lines) != len(images):
        raise ValueError(f"{predictions_path} has {len(lines)} rows but images were given for {len(images)}.")
    systems = list(lines[0]["predictions"]) if lines else []
    measures = {name: list(_measures(lines[0]["predictions"][name])) for name in systems} if lines else {}
    columns = ["id", "image", "reference"]
    for name in systems:
        columns += [f"{name}/answer", *(f"{name}/{measure}" for measure in measures[name])]
    table = wandb.Table(columns=columns)
    for line, sample_images in zip(lines, images, strict=True):
        thumbnail = None
        if sample_images:
            thumbnail = load_image(sample_images[0]).copy()
            thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
            thumbnail = wandb.Image(thumbnail)
        cells = [line["id"], thumbnail, " | ".join(line["references"])]
        for name in systems:
            prediction = line["predictions"][name]
            cells += [prediction["answer"], *_measures(prediction).values()]
        table.add_data(*cells)
    return table


def _measures(prediction: dict) -> dict:
    return prediction.get("errors") or prediction.get("scores") or {}
