"""Does the fine-tuned model still see the world? The model cards' benchmarks through lmms-eval (its tasks, prompts
and metrics; our native Phi-3-V) for the base model and each fine-tune, in one table: the card's number, the base's
score, whether the base reproduces the card (+-1.5 points), each fine-tune's score and what fine-tuning cost.

Needs lmms-eval (`make install-lmms`, then run with `.venv-lmms/bin/python`). One H100, every card benchmark, the
base and one LoRA adapter (about 40 minutes of the GPU per model, an estimate; README, "Benchmarks"):

    accelerate launch --num_processes 1 scripts/forgetting.py --base microsoft/Phi-3-vision-128k-instruct \\
        --fine_tuned sft=outputs/phi3v-burberry --dtype bfloat16 --num_crops 16 --output_dir outputs/forgetting

A quick look at a few documents per benchmark: `--limit 50` (the tolerance is then not judged). Reproducing the card
(the base alone; `--card` is read from the Hub id, and must be given for a local copy):

    python scripts/forgetting.py --base microsoft/Phi-3.5-vision-instruct --dtype bfloat16 --num_crops 16 \\
        --output_dir outputs/card-phi-3.5-vision

Offline, on local copies of the Hub datasets (`--data_dir`: `DIR/lmms-lab-encoder/POPE`, ...), e.g. the fixtures of
`scripts/make_benchmark_fixtures.py` and the tiny model:

    .venv-lmms/bin/python scripts/forgetting.py --base outputs/tiny-phi3v --fine_tuned smoke=outputs/demo \\
        --tasks pope chartqa textvqa_val ai2d --data_dir data/benchmarks --card phi-3-vision-128k-instruct \\
        --num_crops 1 --output_dir outputs/forgetting-demo

`--output_dir` receives `report.md`, `metrics.json` and `lmms_eval/{model}/` (lmms-eval's results and task configs,
and the submission files some tasks write); a non-empty one is refused, and `--overwrite` replaces only an earlier
report of this script.
"""

import json
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState

from phi3v.arguments import OutputArguments, ScriptArgumentParser, check_flag
from phi3v.card_benchmarks.forgetting import forgetting_rows, log_to_wandb, write_report
from phi3v.card_benchmarks.plugin import MODEL_NAME
from phi3v.card_benchmarks.published import CARD_CHECKPOINTS, CARDS, PUBLISHED_BENCHMARKS, check_tasks
from phi3v.checks import DTYPES, existing_path, positive_int, torch_device
from phi3v.errors import UsageError, run_script
from phi3v.inference.loading import check_model_path, parse_model_specs, root_checkpoint
from phi3v.outputs import check_output_dir, prepare_output_dir


REPORT_KIND = "benchmarks"


@dataclass
class ForgettingArguments:
    """The models, the benchmarks, and where their data comes from."""

    base: str = field(metadata={"help": "The base model: a checkpoint or Hub id (an adapter's base, as a rule)."})
    fine_tuned: list[str] = field(
        default_factory=list, metadata={"help": "Fine-tuned models as NAME=PATH (checkpoint, merged model, adapter)."}
    )
    tasks: list[str] = field(
        default_factory=list, metadata={"help": "lmms-eval tasks (default: every card benchmark)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Only the first N documents of each benchmark."})
    card: str | None = field(
        default=None, metadata={"help": "The base's model card (default: from the base's Hub id).", "choices": CARDS}
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Local copies of the Hub datasets, as DIR/<org>/<name> (default: the Hub)."}
    )
    dtype: str = field(
        default="auto", metadata={"help": "Weight dtype; `auto` keeps the checkpoint's.", "choices": DTYPES}
    )
    device: str | None = field(default=None, metadata={"help": "Device with one process (default: accelerate's)."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call (per process)."})
    num_crops: int | None = field(default=None, metadata={"help": "HD crops per image (the cards: 16 for one image)."})
    report_to: str = field(
        default="none", metadata={"help": "`wandb` logs the report to W&B.", "choices": ["none", "wandb"]}
    )

    def __post_init__(self):
        for name in ("limit", "batch_size", "num_crops"):
            check_flag(name, getattr(self, name), positive_int)
        check_flag("data_dir", self.data_dir, existing_path)
        check_flag("device", self.device, torch_device)


def main(args: ForgettingArguments, output: OutputArguments) -> None:
    ################
    # Cheap checks first: models, tasks, card, output directory
    ################
    models = {"base": args.base} | parse_model_specs(args.fine_tuned)
    if len(models) != len(args.fine_tuned) + 1:
        raise UsageError("--fine_tuned may not be named `base`: that is the column of --base.")
    for name, path in models.items():
        check_model_path(path, what=f"Model {name}")
    tasks = check_tasks(args.tasks or [benchmark.task for benchmark in PUBLISHED_BENCHMARKS])
    card = args.card or CARD_CHECKPOINTS.get(root_checkpoint(args.base))
    inputs = [*models.values(), args.data_dir]
    check_output_dir(output.output_dir, output.overwrite, inputs, kind=REPORT_KIND)
    try:  # lmms-eval is in .venv-lmms only: everything above runs without it
        from phi3v.card_benchmarks.local_tasks import local_task_manager, write_local_tasks
        from phi3v.card_benchmarks.runs import evaluate_model
    except ModuleNotFoundError as error:
        if error.name != "lmms_eval":
            raise
        raise UsageError(
            "lmms-eval is not installed here: run `make install-lmms`, then this script with .venv-lmms/bin/python."
        ) from None
    task_manager = None
    if args.data_dir is not None:
        tasks_dir = write_local_tasks(tasks, args.data_dir, tempfile.mkdtemp(prefix="phi3v-lmms-tasks-"))
        task_manager = local_task_manager(tasks_dir, MODEL_NAME)

    ################
    # Every model on every benchmark, one after the other
    ################
    output_dir, state = Path(output.output_dir), PartialState()
    if state.is_main_process:
        prepare_output_dir(output_dir, output.overwrite, inputs, REPORT_KIND, "scripts/forgetting.py")
    state.wait_for_everyone()
    scores, results = {}, {}
    for name, path in models.items():
        scores[name], results[name] = evaluate_model(
            path,
            tasks,
            task_manager=task_manager,
            limit=args.limit,
            dtype=args.dtype,
            device=args.device,
            batch_size=args.batch_size,
            num_crops=args.num_crops,
            files_dir=output_dir / "lmms_eval" / name,
        )
    if scores["base"] is None:  # not the main process of a launch: lmms-eval gathered the results there
        return

    ################
    # The table
    ################
    for name, result in results.items():
        (output_dir / "lmms_eval" / name).mkdir(parents=True, exist_ok=True)
        (output_dir / "lmms_eval" / name / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    rows = forgetting_rows(scores, card, args.limit)
    settings = {"models": models, "card": card, "limit": args.limit, "command": shlex.join(["python", *sys.argv])}
    report = write_report(output_dir, rows, settings)
    if args.report_to == "wandb":
        log_to_wandb(output_dir, rows, settings)
    print(report.read_text())


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser((ForgettingArguments, OutputArguments), description=__doc__)


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
