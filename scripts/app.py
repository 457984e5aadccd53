"""A browser page to try trained models on photos: upload photos, every model answers them, side by side.

Run as (CPU, after `make demo`: the demo's SFT model, with test photos of the synthetic catalogue as examples):

    python scripts/app.py --model demo=outputs/demo --dataset data/synthetic

then open http://127.0.0.1:7860. Several models (full, merged, or LoRA adapters over `--base_model`) side by side:

    python scripts/app.py --model sft=outputs/phi3v-burberry dpo=outputs/phi3v-burberry-dpo \
        --base_model microsoft/Phi-3-vision-128k-instruct --dataset data/burberry --device cuda --dtype bfloat16

`--task free` lets the question be edited and shows raw answers only; `catalogue` keeps the trained question and also
shows the fields read from each answer with the model's answer template. Both default to what the first model was
trained for (`phi3v_task.json`): a catalogue model gets `catalogue`, its question and template; any other `free`. The page binds to 127.0.0.1; pass
`--host 0.0.0.0` to reach it from other machines (anyone who can reach it can run the models).
"""

import argparse
import tempfile
from dataclasses import replace

from phi3v.app.answers import load_examples, load_models
from phi3v.app.page import THEME, build_page
from phi3v.app.photos import MAX_PIXELS
from phi3v.checks import DTYPES, non_negative_int, port, positive_int, torch_device
from phi3v.errors import run_script, usage_errors
from phi3v.inference.loading import check_model_path, parse_model_specs
from phi3v.tasks import build_task
from phi3v.tasks.config import CATALOGUE, CONVERSATION, TaskConfig, load_task_config


# `--task`: the catalogue (its trained question, the fields read from each answer) or free questions.
PAGE_TASKS = {"catalogue": CATALOGUE, "free": CONVERSATION}


def main(args: argparse.Namespace) -> None:
    model_paths = parse_model_specs(args.model)
    for path in model_paths.values():
        check_model_path(path, args.base_model)
    config = load_task_config(next(iter(model_paths.values()))) or TaskConfig(task=CATALOGUE)
    task = build_task(replace(config, task=PAGE_TASKS[args.task]) if args.task else config)
    with tempfile.TemporaryDirectory(prefix="phi3v-app-examples-") as examples_dir:
        examples = []
        if args.dataset:
            examples = load_examples(
                args.dataset, examples_dir, task, args.split, args.num_examples, args.allow_local_paths
            )
        models = load_models(model_paths, args.base_model, dtype=args.dtype, device=args.device)
        page = build_page(
            models,
            task=task,
            question=args.question,
            examples=examples,
            model_paths=model_paths,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            num_crops=args.num_crops,
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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Models
    parser.add_argument(
        "--model",
        required=True,
        nargs="+",
        action="extend",
        help="Model(s) as NAME=PATH (or a bare PATH, named after its folder): a base or merged checkpoint, or a LoRA "
        "adapter directory. List several to compare them side by side.",
    )
    parser.add_argument("--base_model", default=None, help="Base checkpoint of adapters, overriding their config.")
    parser.add_argument("--dtype", default="auto", choices=DTYPES, help="Weight dtype.")
    parser.add_argument("--device", type=torch_device, default="cpu", help="Device to run on, e.g. `cpu` or `cuda`.")
    # Task
    parser.add_argument(
        "--task",
        default=None,
        choices=list(PAGE_TASKS),
        help="`catalogue`: the trained question, the answer template's fields shown; `free`: an editable question. "
        "Default: as the first model was trained.",
    )
    parser.add_argument("--question", default=None, help="The question; default: the one the model was trained on.")
    # Examples
    parser.add_argument("--dataset", default=None, help="Dataset whose photos are offered as examples.")
    parser.add_argument(
        "--allow_local_paths",
        action="store_true",
        help="Let a local dataset's rows name image files outside its folder (a Hub dataset's never read local files).",
    )
    parser.add_argument("--split", default="test", help="Split of --dataset the examples come from.")
    parser.add_argument("--num_examples", type=non_negative_int, default=8, help="How many example photos to offer.")
    # Generation
    parser.add_argument("--batch_size", type=positive_int, default=8, help="Photos per generate call.")
    parser.add_argument(
        "--max_new_tokens", type=positive_int, default=64, help="Generation budget; an answer is ~25 tokens."
    )
    parser.add_argument(
        "--num_crops", type=positive_int, default=None, help="Override the processor's number of HD crops."
    )
    # Server
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind; 0.0.0.0 opens the page to the network.")
    parser.add_argument("--port", type=port, default=7860, help="Port to serve on.")
    parser.add_argument(
        "--max_megapixels", type=positive_int, default=MAX_PIXELS // 1_000_000, help="Largest photo accepted."
    )
    parser.add_argument("--max_file_mb", type=positive_int, default=50, help="Largest upload accepted, in megabytes.")
    return parser


if __name__ == "__main__":
    run_script(lambda: main(usage_errors(make_parser()).parse_args()))
