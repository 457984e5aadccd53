"""Evaluate models (base, LoRA adapter or merged) on a split of any image-text dataset, side by side with controls.

Each model answers every row by batched greedy generation: for a conversational dataset, its last assistant turn from
the conversation before it (scored by exact match and edit similarity, plus the task's own metric for a published
task); for a published task (`docvqa`, `hateful_memes`, `nlvr2`), the Cookbook's prompt scored with its metric (ANLS,
accuracy) against every reference; for a catalogue, the product question, parsed with the model's answer template
and scored per field beside the median-price baselines. Each model's blank-image control answers the same prompts with plain grey pictures
instead of the photos. What the model was trained for (task, question, answer template) is read from `phi3v_task.json`
beside it, so no extra flag is needed; flags override it. The layout is the evaluated dataset's, detected from its
columns unless `--dataset_format` says it, so a model is evaluated on data of another layout as well.

Run as (CPU, the demo's smoke run on the synthetic test split):

    python scripts/evaluate.py --dataset data/synthetic --model smoke=outputs/demo --output_dir outputs/demo-eval

Any dataset layout and split slice, e.g. the LLaVA JSON file a model was trained on (`scripts/sft.py`'s own-data
example), on the rows it held out:

    python scripts/evaluate.py --dataset my_data/llava.json --split "train[90%:]" --model outputs/my-run \
        --output_dir outputs/my-eval

Several models in one report, on 8 GPUs, logged to W&B (project and entity from WANDB_PROJECT / WANDB_ENTITY):

    accelerate launch --num_processes 8 scripts/evaluate.py --dataset data/burberry --dtype bfloat16 \
        --model sft=outputs/phi3v-burberry dpo=outputs/phi3v-burberry-dpo --output_dir outputs/eval-burberry \
        --report_to wandb

Writes `metrics.json`, `predictions.jsonl`, `report.md` (and `price_scatter_*.png` for a catalogue) to `--output_dir`
(described in `phi3v.evaluation.results`) and `report.html` (`phi3v.evaluation.html_report`: the table, the plots and
a gallery of the photos with every answer, worst first, in one file), then prints the report table.

A QLoRA adapter is evaluated on its base quantised to 4-bit as in training (bitsandbytes, on CPU too): the settings
are read from `base_quantization_config.json` beside it; `--load_in_4bit false` evaluates it on the full-precision
base instead, a model it did not train as.
"""

import argparse
import functools
import gc
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import Accelerator

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import ATTN_IMPLEMENTATIONS, DTYPES, auto_bool, check_local_path, positive_int, torch_device
from phi3v.data.formats import FORMATS
from phi3v.data.image_columns import undecoded
from phi3v.data.loading import load_splits
from phi3v.data.local_files import LocalFiles
from phi3v.errors import UsageError, run_script, usage_errors
from phi3v.evaluation.html_report import read_predictions_jsonl, write_html_report
from phi3v.evaluation.report import format_report_table
from phi3v.evaluation.results import EVALUATION_KIND, blank_control_name, check_model_names, write_results
from phi3v.inference.generation import generate_answers_distributed, grey_images
from phi3v.inference.loading import check_model_path, load_for_inference, parse_model_specs
from phi3v.modeling.chat_format import build_prompt
from phi3v.outputs import check_output_dir
from phi3v.tasks import build_task
from phi3v.tasks.config import TASK_NAMES, TaskConfig, load_task_config


def task_config(args: argparse.Namespace, model_paths: list[str]) -> TaskConfig:
    """The models' saved task config (they must agree), overridden by the flags that were given. The layout is the
    evaluated dataset's (`--dataset_format`, else detected from its columns), not the training data's."""
    saved = {
        replace(config, dataset_format=args.dataset_format) for config in map(load_task_config, model_paths) if config
    }
    if len(saved) > 1:
        raise UsageError(
            f"The models were trained for different tasks: {sorted(map(str, saved))}; evaluate them apart."
        )
    config = saved.pop() if saved else TaskConfig(dataset_format=args.dataset_format)
    overrides = {key: getattr(args, key) for key in ("task", "question", "answer_template")}
    return replace(config, **{key: value for key, value in overrides.items() if value is not None})


def main(args: argparse.Namespace) -> None:
    ################
    # Setup: cheap checks first
    ################
    models = parse_model_specs(args.model)
    check_model_names(list(models), args.blank_control)
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, args.overwrite, inputs=[args.dataset, *models.values()], kind=EVALUATION_KIND)
    check_local_path(args.dataset, "Dataset")
    for path in models.values():
        check_model_path(path, args.base_model)
    accelerator = Accelerator(cpu=args.device == "cpu")
    if args.device is not None and accelerator.num_processes > 1:
        raise UsageError("--device is for single-process runs; accelerate assigns one device per process.")
    device = args.device or accelerator.device
    config = task_config(args, list(models.values()))

    ################
    # Dataset: the rows asked (images stay undecoded until their batch), and what the answers are scored against
    ################
    files = LocalFiles.of(args.dataset, args.image_folder, args.allow_local_paths)
    load = functools.partial(
        load_splits,
        args.dataset,
        dataset_config=args.dataset_config,
        image_folder=args.image_folder,
        allow_local_paths=args.allow_local_paths,
    )
    split = load([args.split])[args.split]
    if args.limit is not None:
        split = split.select(range(min(args.limit, len(split))))
    layout, converter = config.row_converter(split.column_names, args.dataset, args.image_folder)
    task = build_task(config.for_layout(layout))
    items = task.eval_items(list(undecoded(split)), layout, converter)
    baselines, baseline_notes = task.baselines(
        items, lambda: load([args.train_split])[args.train_split], args.train_split
    )

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
    images = [item["images"] for item in items]
    answers = {}
    for name, path in models.items():
        accelerator.print(f"Loading {name} from {path}")
        model, processor = load_for_inference(
            path, args.base_model, args.dtype, device, args.attn_implementation, load_in_4bit=args.load_in_4bit
        )
        prompts = [build_prompt(processor, item["prompt"]) for item in items]
        answers[name] = generate(model, processor, prompts, images, description=name)
        if args.blank_control:
            answers[blank_control_name(name)] = generate(
                model, processor, prompts, grey_images(images), description="grey"
            )
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
        f"Split `{args.split}` of `{args.dataset}` ({len(items)} rows, layout `{layout}`, task `{task.name}`).",
        *baseline_notes,
        *(f"- `{name}`: `{path}`" for name, path in models.items()),
        f"Greedy decoding; max_new_tokens={args.max_new_tokens}; num_crops={args.num_crops or 'processor default'}.",
        f"Blank-image control (same prompts, plain grey squares): {'on' if args.blank_control else 'off'}.",
        f"Command: `{shlex.join(['python', *sys.argv])}`",
    ]
    metrics = write_results(output_dir, task, items, answers, baselines, notes="\n\n".join(notes))
    predictions = read_predictions_jsonl(output_dir / "predictions.jsonl")
    # The report shows only images the dataset carried: never a file read from outside it (`allow_local_paths`).
    shown = [[image for image in item_images if files.carried(image)] for item_images in images]
    write_html_report(output_dir, metrics, predictions, shown, notes="\n\n".join(notes))
    print(format_report_table(metrics))
    print(f"Wrote report.md, report.html, metrics.json and predictions.jsonl to {output_dir}")
    if args.report_to == "wandb":
        from phi3v.evaluation.wandb_logging import log_evaluation  # imports wandb only when asked to

        log_evaluation(output_dir, metrics, shown, config=vars(args))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Data
    parser.add_argument(
        "--dataset",
        required=True,
        help="A `save_to_disk` directory, a local .parquet/.jsonl/.json/.csv file, or a Hub dataset id.",
    )
    parser.add_argument("--dataset_config", default=None, help="The Hub dataset's configuration (e.g. hateful_memes).")
    parser.add_argument("--split", default="test", help="Split to evaluate, with an optional slice: `train[:500]`.")
    parser.add_argument("--train_split", default="train", help="Split the catalogue baselines are fitted on.")
    parser.add_argument(
        "--dataset_format",
        default="auto",
        choices=FORMATS,
        help="The dataset's layout; `auto` tells it from the columns.",
    )
    parser.add_argument(
        "--task",
        default=None,
        choices=TASK_NAMES,
        help="`catalogue`, `conversation`, `docvqa`, `hateful_memes` or `nlvr2`; default: as the models were trained.",
    )
    parser.add_argument(
        "--question", default=None, help="Catalogue question; default: the one the models were trained on."
    )
    parser.add_argument("--answer_template", default=None, help="Catalogue answer template; default: as trained.")
    parser.add_argument(
        "--image_folder", default=None, help="Folder of relative LLaVA image paths (default: the file's)."
    )
    parser.add_argument(
        "--allow_local_paths",
        action="store_true",
        help="Let a local dataset's rows name image files outside its folder (a Hub dataset's never read local files).",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="Evaluate only the first N rows of the split."
    )
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
        choices=DTYPES,
        help="Weight dtype; `auto` keeps the checkpoint's.",
    )
    parser.add_argument(
        "--load_in_4bit",
        type=auto_bool,
        default=None,
        metavar="{auto,true,false}",
        help="`auto` (default): a QLoRA adapter's base is quantised to 4-bit as in training "
        "(base_quantization_config.json), any other model loads in full precision; `true` quantises every base "
        "(NF4 unless recorded); `false` loads full-precision bases, which a QLoRA adapter did not train on.",
    )
    parser.add_argument(
        "--device",
        type=torch_device,
        default=None,
        help="Device of a single-process run (e.g. `cpu`, `cuda:1`); by default accelerate's.",
    )
    parser.add_argument("--attn_implementation", default=None, choices=ATTN_IMPLEMENTATIONS, help="Default: sdpa.")
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
    run_script(lambda: main(usage_errors(make_parser()).parse_args()))
