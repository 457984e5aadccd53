"""Command line of the training scripts: `TrlParser`, with the recipe given as a positional path or `--config`.

    python scripts/sft.py recipes/smoke.yaml --max_steps 10
    python scripts/sft.py --config recipes/smoke.yaml --max_steps 10     # the same

YAML keys set the defaults and command-line flags override them. A key or flag that no argument takes fails at
start-up, naming it, so a recipe never trains with a setting silently ignored.
"""

import logging
import os
import sys
from collections.abc import Sequence

import datasets
import transformers
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from trl import TrlParser


def parse_recipe(parser: TrlParser, args: Sequence[str] | None = None) -> tuple:
    """Parses `args` (default: `sys.argv[1:]`) into the parser's dataclasses.

    Args:
        parser (`trl.TrlParser`): the parser over the script's dataclasses.
        args (`Sequence[str]`, *optional*): the command line without the program name.

    Raises:
        `ValueError`: naming the recipe keys or flags that match no field.
    """
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0].endswith((".yaml", ".yml")):
        args = ["--config", *args]
    *parsed, unknown_keys, unknown_flags = parser.parse_args_and_config(
        args, return_remaining_strings=True, separate_remaining_strings=True
    )
    if unknown_keys:
        recipe = args[args.index("--config") + 1]
        keys = [flag.removeprefix("--") for flag in unknown_keys[::2]]
        raise ValueError(f"{recipe}: unknown keys {keys}; no argument of this script has that name.")
    if unknown_flags:
        raise ValueError(f"Unknown command-line arguments: {unknown_flags}")
    return tuple(parsed)


def setup_logging(training_args: TrainingArguments, *parsed_args) -> None:
    """Logs at the process's level (the main process says more), then logs the parsed arguments.

    Args:
        training_args ([`~transformers.TrainingArguments`]): gives the per-process log level.
        *parsed_args: the other argument dataclasses of the run, logged as they are.
    """
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    log_level = training_args.get_process_log_level()
    logging.getLogger("phi3v").setLevel(log_level)
    logging.getLogger("__main__").setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    for args in (*parsed_args, training_args):
        logging.getLogger("phi3v").info(f"{type(args).__name__}: {args}")


def last_checkpoint(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from: `resume_from_checkpoint`, else the last one in `output_dir` (re-running a
    command resumes it), else `None`."""
    if training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    if os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            logging.getLogger("phi3v").info(f"Checkpoint detected, resuming training at {checkpoint}.")
        return checkpoint
    return None
