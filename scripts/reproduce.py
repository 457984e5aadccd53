"""Reproduce a published Phi-3 Cookbook row in one command: check that the row's trainer builds (`sft.py --check_only`,
before the base model's evaluation is spent), evaluate the base model, train with the row's recipe, evaluate the
result, and report before, after, the published number, the difference and whether it is within the sampling
tolerance (+-4 ANLS for DocVQA's 200 items, +-3 points for the 500-item accuracy sets).

Run as (8 GPUs; the recipe header gives the accelerate config, `recipes/cookbook/README.md` the table):

    python scripts/reproduce.py recipes/cookbook/docvqa/sft-lora.yaml \
        --launcher "accelerate launch --config_file accelerate_configs/multi_gpu.yaml" \
        --eval_launcher "accelerate launch --num_processes 8"

Flags this script does not know go to `scripts/sft.py` after the recipe (e.g. `--report_to wandb`, which logs the
training and both evaluations). Offline, on the fixtures of `scripts/make_reproduction_fixtures.py` and the tiny model
(`make demo-reproduce` runs all three tasks this way, 1-4 minutes each on CPU):

    python scripts/reproduce.py recipes/cookbook/hateful-memes/sft-full.yaml \
        --report_dir outputs/reproduce-hateful-memes \
        --eval_dataset data/reproduction/the_cauldron/hateful_memes --eval_split "train[:40]" \
        --model_name_or_path outputs/tiny-phi3v --dataset_name data/reproduction/the_cauldron/hateful_memes \
        --dataset_train_split "train[40:]" --use_cpu true --bf16 false --dtype float32 --attn_implementation sdpa \
        --num_crops 4 --max_length 512 --activation_checkpointing false --gradient_accumulation_steps 1 \
        --per_device_train_batch_size 8 --learning_rate 3e-3 --warmup_steps 0 --num_train_epochs 12 \
        --dataloader_num_workers 0 --save_strategy no --output_dir outputs/reproduce-hateful-memes/model

`--report_dir` receives `eval_set/` (the evaluation items as conversations: the Cookbook's first-turn prompt and all
reference answers), `before/` and `after/` (scripts/evaluate.py's outputs), `predictions.jsonl` (each item's answers
and Cookbook scores before and after), `reproduction.json` and `report.md`. A non-empty `--report_dir` is refused;
`--overwrite` replaces an earlier reproduction there, never a directory this project did not write.
"""

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
from trl import SFTConfig, TrlParser

from phi3v.arguments import ScriptArgumentParser, check_flag
from phi3v.checks import positive_int
from phi3v.data.formats import row_converter
from phi3v.data.loading import load_splits
from phi3v.data.validation import conversation_check, find_row_problems, list_problems
from phi3v.errors import DataError, UsageError, UserError, run_script
from phi3v.outputs import check_output_dir, prepare_output_dir
from phi3v.tasks import PUBLISHED, TASKS
from phi3v.tasks.reproduction import (
    Reproduction,
    eval_conversations,
    render_report,
    score_predictions,
    write_predictions,
)
from phi3v.training import Phi3VModelConfig, Phi3VScriptArguments, parse_recipe


SCRIPTS = Path(__file__).resolve().parent
EVAL_SPLIT_NAME = "test"
REPRODUCTION_KIND = "reproduction"


@dataclass
class ReproduceArguments:
    """Where the report goes, the evaluation set, and the commands that train and evaluate; the recipe is the
    positional argument, and the flags this script does not know go to `scripts/sft.py`."""

    report_dir: str | None = field(
        default=None, metadata={"help": "Where to write the report (default: OUTPUT_DIR-reproduction)."}
    )
    eval_dataset: str | None = field(default=None, metadata={"help": "Evaluation data (default: the published set)."})
    eval_dataset_config: str | None = field(
        default=None, metadata={"help": "Its Hub configuration (default: the published)."}
    )
    eval_split: str | None = field(
        default=None, metadata={"help": "Its split, e.g. `train[:500]` (default: the published)."}
    )
    eval_limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N items."})
    eval_batch_size: int = field(default=8, metadata={"help": "Prompts per generate call, per process."})
    launcher: str = field(
        default=shlex.quote(sys.executable),
        metadata={"help": "Command that runs scripts/sft.py (default: this Python)."},
    )
    eval_launcher: str = field(
        default=shlex.quote(sys.executable),
        metadata={"help": "Command that runs scripts/evaluate.py (default: this Python)."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace an earlier reproduction in --report_dir (never anything else)."}
    )

    def __post_init__(self):
        check_flag("eval_limit", self.eval_limit, positive_int)
        check_flag("eval_batch_size", self.eval_batch_size, positive_int)


def make_parser() -> ScriptArgumentParser:
    parser = ScriptArgumentParser(
        (ReproduceArguments,),
        description=__doc__,
        allow_abbrev=False,  # a flag for scripts/sft.py must not be taken for an abbreviation of one of these
    )
    parser.add_argument("recipe", help="The recipe of a published row, e.g. recipes/cookbook/docvqa/sft-lora.yaml.")
    return parser


def run(command: list[str]) -> None:
    """Runs one step; a step that fails has printed its own message, so this one only names the step."""
    print(f"+ {shlex.join(command)}", flush=True)
    returncode = subprocess.run(command, check=False).returncode
    if returncode != 0:
        step = next((Path(part).name for part in command if part.endswith(".py")), command[0])
        error = UserError(f"The {step} step failed (exit status {returncode}); its message is above.")
        error.exit_status = returncode if returncode > 0 else 1
        raise error


def evaluate(
    args: ReproduceArguments, model: str, output_dir: Path, dtype: str, model_args, use_cpu: bool, wandb: bool
) -> list[str]:
    """Runs scripts/evaluate.py on the eval set and returns the answers, in the eval set's order."""
    command = [
        *shlex.split(args.eval_launcher),
        str(SCRIPTS / "evaluate.py"),
        *("--dataset", str(Path(args.report_dir) / "eval_set"), "--split", EVAL_SPLIT_NAME),
        *("--dataset_format", "conversational", "--task", "conversation"),
        *("--model", f"model={model}", "--output_dir", str(output_dir), "--overwrite", "--no_blank_control"),
        *("--dtype", dtype, "--max_new_tokens", "64", "--batch_size", str(args.eval_batch_size)),
        *(["--num_crops", str(model_args.num_crops)] if model_args.num_crops else []),
        *(["--attn_implementation", model_args.attn_implementation] if model_args.attn_implementation else []),
        *(["--device", "cpu"] if use_cpu else []),
        *(["--report_to", "wandb"] if wandb else []),
    ]
    run(command)
    with open(output_dir / "predictions.jsonl") as file:
        return [json.loads(line)["predictions"]["model"]["answer"] for line in file]


def main(args: ReproduceArguments, positional: argparse.Namespace, sft_args: list[str]) -> None:
    ################
    # Cheap checks first: the recipe is a published row, the flags parse, the report directory is free
    ################
    recipe = Path(positional.recipe)
    # A row's recipe is named by its path under recipes/ (`cookbook/docvqa/sft-lora.yaml`), wherever the checkout is.
    published = next((row for row in PUBLISHED if recipe.resolve().as_posix().endswith(f"/{row.recipe}")), None)
    if published is None:
        recipes = sorted(f"recipes/{row.recipe}" for row in PUBLISHED)
        raise UsageError(f"{recipe} is not the recipe of a published row; those are {recipes}.")
    task = TASKS[published.task]
    parser = TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig))
    script_args, training_args, model_args = parse_recipe(parser, [str(recipe), *sft_args])
    report_dir = Path(args.report_dir or f"{training_args.output_dir}-reproduction")
    args.report_dir = str(report_dir)
    # The report directory follows the other scripts' output rules: --overwrite replaces only an earlier reproduction.
    inputs = [model_args.model_name_or_path, script_args.dataset_name, args.eval_dataset]
    check_output_dir(report_dir, args.overwrite, inputs, kind=REPRODUCTION_KIND)
    wandb = "wandb" in training_args.report_to
    dtype = model_args.dtype if model_args.dtype in ("float32", "bfloat16", "float16") else "auto"

    ################
    # The evaluation set, as the Cookbook asks it
    ################
    source = task.eval_source
    eval_dataset = args.eval_dataset or source.name
    eval_config = args.eval_dataset_config or (source.config if args.eval_dataset is None else None)
    eval_split = args.eval_split or source.split
    rows_asked = load_splits(eval_dataset, [eval_split], eval_config, allow_local_paths=script_args.allow_local_paths)[
        eval_split
    ]
    if args.eval_limit is not None:
        rows_asked = rows_asked.select(range(min(args.eval_limit, len(rows_asked))))
    # A row the Cookbook's prompt cannot be made of is skipped and reported (reproduction.json), never asked half-read.
    _, converter = row_converter(source.format, rows_asked.column_names)
    skipped = find_row_problems(rows_asked, eval_split, conversation_check(converter))
    if len(skipped) == len(rows_asked):
        raise DataError(f"No row of {eval_dataset} {eval_split} can be asked:\n{list_problems(skipped)}")
    if skipped:
        print(
            f"Skipping {len(skipped)} evaluation rows that cannot be asked:\n{list_problems(skipped)}", file=sys.stderr
        )
        bad = {problem.row for problem in skipped}
        rows_asked = rows_asked.select([index for index in range(len(rows_asked)) if index not in bad])
    eval_set = eval_conversations(task, rows_asked)
    eval_set = eval_set.add_column("id", [str(index) for index in range(len(eval_set))])
    prepare_output_dir(report_dir, args.overwrite, inputs, kind=REPRODUCTION_KIND, written_by="scripts/reproduce.py")
    datasets.DatasetDict({EVAL_SPLIT_NAME: eval_set}).save_to_disk(str(report_dir / "eval_set"))
    references = eval_set["references"]

    ################
    # The trainer must build (model, LoRA, frozen parts) before the base model's evaluation is spent
    ################
    run([*shlex.split(args.launcher), str(SCRIPTS / "sft.py"), str(recipe), *sft_args, "--check_only", "true"])

    ################
    # Before, training, after
    ################
    before_answers = evaluate(args, model_args.model_name_or_path, report_dir / "before", dtype, model_args,
                              training_args.use_cpu, wandb)  # fmt: skip
    run([*shlex.split(args.launcher), str(SCRIPTS / "sft.py"), str(recipe), *sft_args])
    after_answers = evaluate(args, training_args.output_dir, report_dir / "after", dtype, model_args,
                             training_args.use_cpu, wandb)  # fmt: skip

    ################
    # Cookbook scores, report
    ################
    before, before_scores = score_predictions(task, before_answers, references)
    after, after_scores = score_predictions(task, after_answers, references)
    command = shlex.join(["python", *sys.argv])
    eval_set_name = " ".join(part for part in (eval_dataset, eval_config, eval_split) if part)
    reproduction = Reproduction(published, before, after, model_args.model_name_or_path, eval_set_name)
    summary = reproduction.to_json_dict() | {
        "num_items": len(references),
        "skipped_rows": [asdict(problem) for problem in skipped],
        "eval_set": eval_set_name,
        "model": model_args.model_name_or_path,
        "trained_model": training_args.output_dir,
        "command": command,
    }
    (report_dir / "reproduction.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_predictions(
        report_dir / "predictions.jsonl",
        [
            {
                "id": item_id,
                "prompt": messages[0]["content"],
                "references": item_references,
                "before": {"answer": before_answers[index], "score": before_scores[index]},
                "after": {"answer": after_answers[index], "score": after_scores[index]},
            }
            for index, (item_id, messages, item_references) in enumerate(
                zip(eval_set["id"], eval_set["messages"], references, strict=True)
            )
        ],
    )
    report = render_report(reproduction, len(references), command)
    if skipped:
        report += (
            f"\n{len(skipped)} rows of the evaluation set could not be asked and were skipped (`skipped_rows` in "
            "reproduction.json says why); the scores are over the others.\n"
        )
    (report_dir / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse_known()))
