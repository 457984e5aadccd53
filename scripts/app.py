"""A browser page to try trained models on photos: upload photos, every model answers them, side by side.

Run as (CPU, after `make demo`: the demo's SFT model, with test photos of the synthetic catalogue as examples):

    python scripts/app.py --model demo=outputs/demo --dataset data/synthetic

then open http://127.0.0.1:7860. Several models (full, merged, or LoRA adapters over `--base_model`) side by side:

    python scripts/app.py --model sft=outputs/phi3v-burberry dpo=outputs/phi3v-burberry-dpo \
        --base_model microsoft/Phi-3-vision-128k-instruct --dataset data/burberry --device cuda --dtype bfloat16

`--task free` lets the question be edited and shows raw answers only; `catalogue` keeps the trained question and also
shows the fields read from each answer with the model's answer template. Both default to what the first model was
trained for (`phi3v_task.json`): a catalogue model gets `catalogue`, its question and template; any other model its
own task, whose question can be edited, as with `free`. The page binds to 127.0.0.1; pass
`--host 0.0.0.0` to reach it from other machines (anyone who can reach it can run the models).
"""

import tempfile
from dataclasses import dataclass, field, replace

from phi3v.app.answers import load_examples, load_models
from phi3v.app.page import THEME, build_page
from phi3v.app.photos import MAX_PIXELS
from phi3v.arguments import GenerationArguments, ModelLoadingArguments, ScriptArgumentParser, check_flag
from phi3v.checks import non_negative_int, port, positive_int
from phi3v.errors import run_script
from phi3v.inference.loading import check_model_path, parse_model_specs
from phi3v.tasks import build_task
from phi3v.tasks.config import CATALOGUE, CONVERSATION, TaskConfig, load_task_config


# `--task`: the catalogue (its trained question, the fields read from each answer) or free questions.
PAGE_TASKS = {"catalogue": CATALOGUE, "free": CONVERSATION}


@dataclass
class AppArguments:
    """The models, what the page asks, its example photos and the server; model loading and generation flags are
    `phi3v.arguments`'."""

    model: list[str] = field(
        metadata={
            "help": "Model(s) as NAME=PATH (or a bare PATH, named after its folder): a base or merged checkpoint, or "
            "a LoRA adapter directory. List several to compare them side by side.",
            "action": "extend",
        }
    )
    task: str | None = field(
        default=None,
        metadata={
            "help": "`catalogue`: the trained question, the answer template's fields shown; `free`: an editable "
            "question. Default: as the first model was trained.",
            "choices": list(PAGE_TASKS),
        },
    )
    question: str | None = field(
        default=None, metadata={"help": "The question; default: the one the model was trained on."}
    )
    dataset: str | None = field(default=None, metadata={"help": "Dataset whose photos are offered as examples."})
    allow_local_paths: bool = field(
        default=False,
        metadata={
            "help": "Let a local dataset's rows name image files outside its folder (a Hub dataset's never read "
            "local files)."
        },
    )
    split: str = field(default="test", metadata={"help": "Split of --dataset the examples come from."})
    num_examples: int = field(default=8, metadata={"help": "How many example photos to offer."})
    host: str = field(
        default="127.0.0.1", metadata={"help": "Address to bind; 0.0.0.0 opens the page to the network."}
    )
    port: int = field(default=7860, metadata={"help": "Port to serve on."})
    max_megapixels: int = field(default=MAX_PIXELS // 1_000_000, metadata={"help": "Largest photo accepted."})
    max_file_mb: int = field(default=50, metadata={"help": "Largest upload accepted, in megabytes."})

    def __post_init__(self):
        check_flag("num_examples", self.num_examples, non_negative_int)
        check_flag("port", self.port, port)
        check_flag("max_megapixels", self.max_megapixels, positive_int)
        check_flag("max_file_mb", self.max_file_mb, positive_int)


@dataclass
class AppModelLoadingArguments(ModelLoadingArguments):
    """`phi3v.arguments.ModelLoadingArguments` on the CPU unless `--device` says otherwise."""

    device: str | None = field(default="cpu", metadata={"help": "Device to run on, e.g. `cpu`, `cuda` or `cuda:1`."})


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser((AppArguments, AppModelLoadingArguments, GenerationArguments), description=__doc__)


def main(args: AppArguments, model_args: AppModelLoadingArguments, generation_args: GenerationArguments) -> None:
    model_paths = parse_model_specs(args.model)
    for path in model_paths.values():
        check_model_path(path, model_args.base_model)
    config = load_task_config(next(iter(model_paths.values()))) or TaskConfig(task=CATALOGUE)
    task = build_task(replace(config, task=PAGE_TASKS[args.task]) if args.task else config)
    with tempfile.TemporaryDirectory(prefix="phi3v-app-examples-") as examples_dir:
        examples = []
        if args.dataset:
            examples = load_examples(
                args.dataset, examples_dir, task, args.split, args.num_examples, args.allow_local_paths
            )
        models = load_models(
            model_paths,
            model_args.base_model,
            dtype=model_args.dtype,
            device=model_args.device,
            attn_implementation=model_args.attn_implementation,
            load_in_4bit=model_args.load_base_in_4bit,
        )
        page = build_page(
            models,
            task=task,
            question=args.question,
            examples=examples,
            model_paths=model_paths,
            batch_size=generation_args.batch_size,
            max_new_tokens=generation_args.max_new_tokens,
            num_crops=generation_args.num_crops,
            max_pixels=args.max_megapixels * 1_000_000,
        )
        page.launch(  # serves until interrupted
            server_name=args.host,
            server_port=args.port,
            allowed_paths=[examples_dir],
            max_file_size=f"{args.max_file_mb}mb",
            ssr_mode=False,
            theme=THEME,
        )


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
