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
from pathlib import Path

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import ATTN_IMPLEMENTATIONS, DTYPES, positive_int, torch_device
from phi3v.errors import DataError, UsageError, run_script, usage_errors
from phi3v.inference.loading import check_model_path, load_for_inference
from phi3v.inference.prediction import find_images, find_unreadable_images, format_table, predict_images, write_records
from phi3v.outputs import check_output_file
from phi3v.tasks import build_task, load_task
from phi3v.tasks.config import CATALOGUE, TaskConfig


def main(args: argparse.Namespace) -> None:
    if args.format == "table" and args.output is not None:
        raise UsageError("--output needs --format jsonl or csv; the table is printed.")
    paths = find_images(args.images)
    if args.output is not None:
        check_output_file(args.output, args.overwrite, inputs=paths)
    check_model_path(args.model, args.base_model)
    unreadable = find_unreadable_images(paths)
    for path, reason in unreadable.items():
        print(f"Skipping unreadable image {path}: {reason}", file=sys.stderr)
    if len(unreadable) == len(paths):
        raise DataError(f"None of the {len(paths)} image file(s) could be read; nothing to predict.")
    task = load_task(args.model) or build_task(TaskConfig(task=CATALOGUE))
    model, processor = load_for_inference(
        args.model, args.base_model, dtype=args.dtype, device=args.device, attn_implementation=args.attn_implementation
    )
    records = predict_images(
        model,
        processor,
        paths,
        task,
        question=args.question,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        num_crops=args.num_crops,
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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="Image files and/or folders of images.")
    # Model
    parser.add_argument(
        "--model",
        required=True,
        help="A base or merged checkpoint (directory or Hub id), or a LoRA adapter directory.",
    )
    parser.add_argument("--base_model", default=None, help="Base checkpoint of an adapter, overriding its config.")
    parser.add_argument("--dtype", default="auto", choices=DTYPES, help="Weight dtype.")
    parser.add_argument("--device", type=torch_device, default="cpu", help="Device to run on, e.g. `cpu` or `cuda`.")
    parser.add_argument("--attn_implementation", default=None, choices=ATTN_IMPLEMENTATIONS, help="Default: sdpa.")
    # Generation
    parser.add_argument("--question", default=None, help="The question; default: the one the model was trained on.")
    parser.add_argument("--batch_size", type=positive_int, default=8, help="Images per generate call.")
    parser.add_argument(
        "--max_new_tokens", type=positive_int, default=64, help="Generation budget; an answer is ~25 tokens."
    )
    parser.add_argument(
        "--num_crops", type=positive_int, default=None, help="Override the processor's number of HD crops."
    )
    # Output
    parser.add_argument(
        "--format", default="table", choices=["table", "jsonl", "csv"], help="Terminal table, JSON Lines or CSV."
    )
    parser.add_argument("--output", default=None, help="File for --format jsonl/csv (default: standard output).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --output file.")
    return parser


if __name__ == "__main__":
    run_script(lambda: main(usage_errors(make_parser()).parse_args()))
