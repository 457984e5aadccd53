"""Answer photos with a fine-tuned Phi-3-V (base, LoRA adapter or merged): for a catalogue model, the title, category
and price read from its answers with the answer template it was trained with (`phi3v_task.json`).

Run as:

    python scripts/predict.py --model outputs/demo photos/bag.jpg photos/scarf.png
    python scripts/predict.py --model outputs/phi3v-burberry photos/ --format csv --output predictions.csv
    python scripts/predict.py --model outputs/phi3v-burberry-merged photos/ --device cuda --dtype bfloat16 \
        --format jsonl

Prints a table by default; `--format jsonl` or `--format csv` writes one record per image (image, the template's
fields, parsed, answer, error) to `--output` or to standard output. A model trained for another task answers
`--question`.

Before the model loads, every image is decoded once: a 0-byte, truncated or corrupt file is named on standard error,
skipped, and written with its `error`; the others are still answered. Nothing readable at all exits with status 1.
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.arguments import GenerationArguments, ModelLoadingArguments, ScriptArgumentParser
from phi3v.errors import DataError, UsageError, run_script
from phi3v.inference.loading import check_model_path, load_for_inference
from phi3v.inference.prediction import find_images, find_unreadable_images, format_table, predict_images, write_records
from phi3v.outputs import check_output_file
from phi3v.tasks import build_task, load_task
from phi3v.tasks.config import CATALOGUE, TaskConfig


@dataclass
class PredictArguments:
    """The model, its question and where the answers go; the images are the positional arguments."""

    model: str = field(
        metadata={"help": "A base or merged checkpoint (directory or Hub id), or a LoRA adapter directory."}
    )
    question: str | None = field(
        default=None, metadata={"help": "The question; default: the one the model was trained on."}
    )
    format: str = field(
        default="table", metadata={"help": "Terminal table, JSON Lines or CSV.", "choices": ["table", "jsonl", "csv"]}
    )
    output: str | None = field(
        default=None, metadata={"help": "File for --format jsonl/csv (default: standard output)."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output file."})


@dataclass
class PredictModelLoadingArguments(ModelLoadingArguments):
    """`phi3v.arguments.ModelLoadingArguments` on the CPU unless `--device` says otherwise."""

    device: str | None = field(default="cpu", metadata={"help": "Device to run on, e.g. `cpu`, `cuda` or `cuda:1`."})


def make_parser() -> ScriptArgumentParser:
    parser = ScriptArgumentParser(
        (PredictArguments, PredictModelLoadingArguments, GenerationArguments), description=__doc__
    )
    parser.add_argument("images", nargs="+", help="Image files and/or folders of images.")
    return parser


def main(
    args: PredictArguments,
    model_args: PredictModelLoadingArguments,
    generation_args: GenerationArguments,
    positional: argparse.Namespace,
) -> None:
    if args.format == "table" and args.output is not None:
        raise UsageError("--output needs --format jsonl or csv; the table is printed.")
    paths = find_images(positional.images)
    if args.output is not None:
        check_output_file(args.output, args.overwrite, inputs=paths)
    check_model_path(args.model, model_args.base_model)
    unreadable = find_unreadable_images(paths)
    for path, reason in unreadable.items():
        print(f"Skipping unreadable image {path}: {reason}", file=sys.stderr)
    if len(unreadable) == len(paths):
        raise DataError(f"None of the {len(paths)} image file(s) could be read; nothing to predict.")
    task = load_task(args.model) or build_task(TaskConfig(task=CATALOGUE))
    model, processor = load_for_inference(
        args.model,
        model_args.base_model,
        dtype=model_args.dtype,
        device=model_args.device,
        attn_implementation=model_args.attn_implementation,
        load_in_4bit=model_args.load_base_in_4bit,
    )
    records = predict_images(
        model,
        processor,
        paths,
        task,
        question=args.question,
        batch_size=generation_args.batch_size,
        max_new_tokens=generation_args.max_new_tokens,
        num_crops=generation_args.num_crops,
        unreadable=unreadable,
    )
    if args.format == "table":
        print(format_table(records))
    elif args.output is None:
        write_records(records, sys.stdout, args.format)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "w", encoding="utf-8", newline="") as file:
            write_records(records, file, args.format)
        print(f"Wrote {len(records)} predictions to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
