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

A row that cannot be asked (a malformed conversation, an empty answer, an unreadable image: `phi3v.data.validation`)
is skipped and reported, never asked half-read; the others are scored.

Writes `metrics.json`, `predictions.jsonl`, `report.md` (and `price_scatter_*.png` for a catalogue, `skipped_rows.json`
when rows were skipped) to `--output_dir`
(described in `phi3v.evaluation.results`) and `report.html` (`phi3v.evaluation.html_report`: the table, the plots and
a gallery of the photos with every answer, worst first, in one file), then prints the report table.

A QLoRA adapter is evaluated on its base quantised to 4-bit as in training (bitsandbytes, on CPU too): the settings
are read from `base_quantization_config.json` beside it; `--load_in_4bit false` evaluates it on the full-precision
base instead, a model it did not train as.
"""

import functools
import gc
import shlex
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.arguments import (
    DatasetArguments,
    GenerationArguments,
    ModelLoadingArguments,
    OutputArguments,
    ScriptArgumentParser,
    check_flag,
)
from phi3v.checks import check_local_path, positive_int
from phi3v.data.image_columns import undecoded
from phi3v.data.loading import load_splits
from phi3v.data.local_files import LocalFiles
from phi3v.data.validation import conversation_check, find_row_problems, list_problems
from phi3v.errors import DataError, UsageError, run_script
from phi3v.evaluation.html_report import read_predictions_jsonl, write_html_report
from phi3v.evaluation.report import format_report_table
from phi3v.evaluation.results import (
    EVALUATION_KIND,
    SKIPPED_ROWS_NAME,
    blank_control_name,
    check_model_names,
    write_results,
)
from phi3v.inference.generation import generate_answers_distributed, grey_images
from phi3v.inference.loading import check_model_path, load_for_inference, parse_model_specs
from phi3v.modeling.chat_format import build_prompt
from phi3v.outputs import check_output_dir
from phi3v.tasks import build_task
from phi3v.tasks.config import TASK_NAMES, TaskConfig, load_task_config


@dataclass
class EvaluateArguments:
    """The models evaluated, what they are asked and the report's extras; the dataset, model loading, generation and
    output flags are `phi3v.arguments`'."""

    model: list[str] = field(
        metadata={
            "help": "Model(s) as NAME=PATH (or a bare PATH, named after its folder): a base or merged checkpoint, or "
            "a LoRA adapter directory. Repeat or list several for one report with a column per model.",
            "action": "extend",
        }
    )
    train_split: str = field(default="train", metadata={"help": "Split the catalogue baselines are fitted on."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N rows of the split."})
    task: str | None = field(
        default=None,
        metadata={
            "help": "`catalogue`, `conversation`, `docvqa`, `hateful_memes` or `nlvr2`; default: as the models were "
            "trained.",
            "choices": TASK_NAMES,
        },
    )
    question: str | None = field(
        default=None, metadata={"help": "Catalogue question; default: the one the models were trained on."}
    )
    answer_template: str | None = field(
        default=None, metadata={"help": "Catalogue answer template; default: as trained."}
    )
    blank_control: bool = field(
        default=True,
        metadata={"help": "Also run each model on grey images (default); `--no_blank_control` skips it."},
    )
    report_to: str = field(
        default="none", metadata={"help": "Also log everything to W&B.", "choices": ["none", "wandb"]}
    )

    def __post_init__(self):
        check_flag("limit", self.limit, positive_int)


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser(
        (EvaluateArguments, DatasetArguments, ModelLoadingArguments, GenerationArguments, OutputArguments),
        description=__doc__,
    )


def task_config(args: EvaluateArguments, dataset_format: str, model_paths: list[str]) -> TaskConfig:
    """The models' saved task config (they must agree), overridden by the flags that were given. The layout is the
    evaluated dataset's (`--dataset_format`, else detected from its columns), not the training data's."""
    saved = {replace(config, dataset_format=dataset_format) for config in map(load_task_config, model_paths) if config}
    if len(saved) > 1:
        raise UsageError(
            f"The models were trained for different tasks: {sorted(map(str, saved))}; evaluate them apart."
        )
    config = saved.pop() if saved else TaskConfig(dataset_format=dataset_format)
    overrides = {key: getattr(args, key) for key in ("task", "question", "answer_template")}
    return replace(config, **{key: value for key, value in overrides.items() if value is not None})


def main(
    args: EvaluateArguments,
    data_args: DatasetArguments,
    model_args: ModelLoadingArguments,
    generation_args: GenerationArguments,
    output_args: OutputArguments,
) -> None:
    ################
    # Setup: cheap checks first
    ################
    models = parse_model_specs(args.model)
    check_model_names(list(models), args.blank_control)
    output_dir = Path(output_args.output_dir)
    check_output_dir(
        output_dir, output_args.overwrite, inputs=[data_args.dataset, *models.values()], kind=EVALUATION_KIND
    )
    check_local_path(data_args.dataset, "Dataset")
    for path in models.values():
        check_model_path(path, model_args.base_model)
    accelerator = Accelerator(cpu=model_args.device == "cpu")
    if model_args.device is not None and accelerator.num_processes > 1:
        raise UsageError("--device is for single-process runs; accelerate assigns one device per process.")
    device = model_args.device or accelerator.device
    config = task_config(args, data_args.dataset_format, list(models.values()))

    ################
    # Dataset: the rows asked (images stay undecoded until their batch), and what the answers are scored against
    ################
    files = LocalFiles.of(data_args.dataset, data_args.image_folder, data_args.allow_local_paths)
    load = functools.partial(
        load_splits,
        data_args.dataset,
        dataset_config=data_args.dataset_config,
        image_folder=data_args.image_folder,
        allow_local_paths=data_args.allow_local_paths,
        encoding=data_args.encoding,
        delimiter=data_args.delimiter,
    )
    split = load([data_args.split])[data_args.split]
    if args.limit is not None:
        split = split.select(range(min(args.limit, len(split))))
    layout, converter = config.row_converter(split.column_names, data_args.dataset, data_args.image_folder)
    task = build_task(config.for_layout(layout))
    # A row that cannot be asked (phi3v.data.validation) is skipped and reported, never asked half-read.
    skipped = find_row_problems(split, data_args.split, conversation_check(converter))
    skipped_rows = {problem.row for problem in skipped}
    asked = split.select([index for index in range(len(split)) if index not in skipped_rows])
    # A raw catalogue table (image URLs, prices as written) goes through prepare_dataset.py first, as for training:
    # its prices are read there (`phi3v.preparation.prices`), never as pandas guesses them.
    task.check_training_rows(asked if len(asked) else split, layout, data_args.dataset)
    if not len(asked):
        raise DataError(
            f"No row of split {data_args.split!r} of {data_args.dataset} can be asked:\n{list_problems(skipped)}"
        )
    if skipped:
        print(
            f"Skipping {len(skipped)} of {len(split)} rows that cannot be asked:\n{list_problems(skipped)}",
            file=sys.stderr,
        )
    items = task.eval_items(list(undecoded(split)), layout, converter, skip_rows=skipped_rows)
    baselines, baseline_notes = task.baselines(
        items, lambda: load([args.train_split])[args.train_split], args.train_split
    )

    ################
    # Generate
    ################
    generate = functools.partial(
        generate_answers_distributed,
        accelerator,
        batch_size=generation_args.batch_size,
        max_new_tokens=generation_args.max_new_tokens,
        num_crops=generation_args.num_crops,
    )
    images = [item["images"] for item in items]
    answers = {}
    for name, path in models.items():
        accelerator.print(f"Loading {name} from {path}")
        model, processor = load_for_inference(
            path,
            model_args.base_model,
            model_args.dtype,
            device,
            model_args.attn_implementation,
            load_in_4bit=model_args.load_base_in_4bit,
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
        (
            f"Split `{data_args.split}` of `{data_args.dataset}` ({len(items)} rows, layout `{layout}`, "
            f"task `{task.name}`)."
        ),
        *baseline_notes,
        *(f"- `{name}`: `{path}`" for name, path in models.items()),
        (
            f"Greedy decoding; max_new_tokens={generation_args.max_new_tokens}; "
            f"num_crops={generation_args.num_crops or 'processor default'}."
        ),
        f"Blank-image control (same prompts, plain grey squares): {'on' if args.blank_control else 'off'}.",
        *(
            [f"Skipped {len(skipped)} of {len(split)} rows that cannot be asked (`{SKIPPED_ROWS_NAME}` lists why)."]
            if skipped
            else []
        ),
        f"Command: `{shlex.join(['python', *sys.argv])}`",
    ]
    metrics = write_results(output_dir, task, items, answers, baselines, notes="\n\n".join(notes), skipped=skipped)
    predictions = read_predictions_jsonl(output_dir / "predictions.jsonl")
    # The report shows only images the dataset carried: never a file read from outside it (`allow_local_paths`).
    shown = [[image for image in item_images if files.carried(image)] for item_images in images]
    write_html_report(output_dir, metrics, predictions, shown, notes="\n\n".join(notes))
    print(format_report_table(metrics))
    print(f"Wrote report.md, report.html, metrics.json and predictions.jsonl to {output_dir}")
    if args.report_to == "wandb":
        from phi3v.evaluation.wandb_logging import log_evaluation  # imports wandb only when asked to

        run_config = {}
        for arguments in (args, data_args, model_args, generation_args, output_args):
            run_config |= asdict(arguments)
        log_evaluation(output_dir, metrics, shown, config=run_config)


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
