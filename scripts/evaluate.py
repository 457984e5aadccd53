"""Evaluate models (base, LoRA adapter or merged) on a split of a prepared catalogue, side by side with baselines.

Each model answers every product of the split by batched greedy generation; its blank-image control answers the
same prompts with a plain grey picture instead of the photo. The baselines (the training split's median price, and
the median price of the true category) need no model. One report compares them all.

Run as (CPU, the demo's smoke run on the synthetic test split):

    python scripts/evaluate.py --dataset data/synthetic --model smoke=outputs/demo --output_dir outputs/demo-eval

Several models in one report, on 8 GPUs, logged to W&B (project and entity from WANDB_PROJECT / WANDB_ENTITY):

    accelerate launch --num_processes 8 scripts/evaluate.py --dataset data/burberry --dtype bfloat16 \
        --model sft=outputs/phi3v-burberry dpo=outputs/phi3v-burberry-dpo --output_dir outputs/eval-burberry \
        --report_to wandb

Writes `metrics.json`, `predictions.jsonl`, `report.md` and `price_scatter_*.png` to `--output_dir` (described in
`phi3v.evaluation.results`) and prints the report table.
"""

import argparse
import functools
import gc
import shlex
import sys
from pathlib import Path

import datasets
import torch
from accelerate import Accelerator

from phi3v.checks import check_local_path, positive_int
from phi3v.data.formatting import DEFAULT_QUESTION
from phi3v.evaluation.generation import build_prompts, generate_answers_distributed, grey_image
from phi3v.evaluation.loading import check_model_path, load_for_inference
from phi3v.evaluation.report import format_report_table
from phi3v.evaluation.results import EVALUATION_KIND, baseline_metrics, blank_control_name, write_results
from phi3v.outputs import check_output_dir


def parse_model_specs(specs: list[str]) -> dict[str, str]:
    """`["sft=outputs/demo", "outputs/demo-dpo"]` -> `{"sft": "outputs/demo", "demo-dpo": "outputs/demo-dpo"}`: a
    bare path is named after its last component."""
    models = {}
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
        if not name or not path or name in models:
            raise ValueError(f"Bad or duplicate --model {spec!r}; expected distinct NAME=PATH entries.")
        models[name] = path
    return models


def main(args: argparse.Namespace) -> None:
    ################
    # Setup
    ################
    models = parse_model_specs(args.model)
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, args.overwrite, inputs=[args.dataset, *models.values()], kind=EVALUATION_KIND)
    check_local_path(args.dataset, "Dataset")
    for path in models.values():
        check_model_path(path, args.base_model)
    accelerator = Accelerator(cpu=args.device == "cpu")
    if args.device is not None and accelerator.num_processes > 1:
        raise ValueError("--device is for single-process runs; accelerate assigns one device per process.")
    device = args.device or accelerator.device

    ################
    # Load dataset
    ################
    catalogue = datasets.load_from_disk(args.dataset)
    split = catalogue[args.split]
    if args.limit is not None:
        split = split.select(range(min(args.limit, len(split))))
    rows = split.remove_columns("image").to_list()
    images = split["image"]  # decoded batch by batch during generation
    baselines = baseline_metrics(catalogue["train"].remove_columns("image").to_list(), rows)

    ################
    # Generate
    ################
    generate = functools.partial(
        generate_answers_distributed,
        accelerator,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        num_crops=args.num_crops,
    )
    answers = {}
    for name, path in models.items():
        accelerator.print(f"Loading {name} from {path}")
        model, processor = load_for_inference(path, args.base_model, args.dtype, device, args.attn_implementation)
        prompts = build_prompts(processor, len(rows), args.question)
        answers[name] = generate(model, processor, prompts, images, description=name)
        if args.blank_control:
            grey_images = [grey_image()] * len(rows)
            answers[blank_control_name(name)] = generate(model, processor, prompts, grey_images, description="grey")
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    ################
    # Score and write
    ################
    if not accelerator.is_main_process:
        return
    notes = [
        f"Split `{args.split}` of `{args.dataset}` ({len(rows)} products); baselines fitted on its `train` split.",
        *(f"- `{name}`: `{path}`" for name, path in models.items()),
        f"Greedy decoding; max_new_tokens={args.max_new_tokens}; num_crops={args.num_crops or 'processor default'}.",
        f"Blank-image control (same prompts, a plain grey square): {'on' if args.blank_control else 'off'}.",
        f"Command: `{shlex.join(['python', *sys.argv])}`",
    ]
    metrics = write_results(output_dir, rows, answers, baselines, notes="\n\n".join(notes))
    print(format_report_table(metrics))
    print(f"Wrote report.md, metrics.json, predictions.jsonl and price plots to {output_dir}")
    if args.report_to == "wandb":
        from phi3v.evaluation.wandb_logging import log_evaluation  # imports wandb only when asked to

        log_evaluation(output_dir, metrics, images, config=vars(args))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Data
    parser.add_argument("--dataset", required=True, help="Prepared catalogue directory (`datasets.load_from_disk`).")
    parser.add_argument("--split", default="test", help="Split to evaluate; baselines always use `train`.")
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="Evaluate only the first N products of the split."
    )
    parser.add_argument("--question", default=DEFAULT_QUESTION, help="The question the models were trained on.")
    # Models
    parser.add_argument(
        "--model",
        required=True,
        nargs="+",
        action="extend",
        help="Model(s) as NAME=PATH (or a bare PATH, named after its folder): a base or merged checkpoint, or a LoRA "
        "adapter directory. Repeat or list several for one report with a column per model.",
    )
    parser.add_argument(
        "--base_model", default=None, help="Base checkpoint for adapters, overriding adapter_config.json."
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="Weight dtype; `auto` keeps the checkpoint's.",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="Device of a single-process run (e.g. `cpu`, `cuda:1`); by default accelerate's.",
    )
    parser.add_argument(
        "--attn_implementation", default=None, help="`sdpa` (default), `eager` or `flash_attention_2`."
    )
    # Generation
    parser.add_argument("--batch_size", type=positive_int, default=8, help="Prompts per generate call (per process).")
    parser.add_argument(
        "--max_new_tokens", type=positive_int, default=64, help="Generation budget; an answer is ~25 tokens."
    )
    parser.add_argument(
        "--num_crops", type=positive_int, default=None, help="Override the processor's number of HD crops."
    )
    parser.add_argument(
        "--blank_control", action="store_true", default=True, help="Also run each model on grey images (default)."
    )
    parser.add_argument(
        "--no_blank_control", dest="blank_control", action="store_false", help="Skip the blank-image control."
    )
    # Output
    parser.add_argument(
        "--output_dir", required=True, help="Where to write the report, metrics, predictions and plots."
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier evaluation in --output_dir.")
    parser.add_argument("--report_to", default="none", choices=["none", "wandb"], help="Also log everything to W&B.")
    return parser


if __name__ == "__main__":
    main(make_parser().parse_args())
