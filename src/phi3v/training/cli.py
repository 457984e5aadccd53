"""Command line of the training scripts: `TrlParser`, with the recipe given as a positional path or `--config`.

    python scripts/sft.py recipes/smoke/sft-full.yaml --max_steps 10
    python scripts/sft.py --config recipes/smoke/sft-full.yaml --max_steps 10     # the same

YAML keys set the defaults and command-line flags override them. A key or flag that no argument takes fails at
start-up, naming it (TRL's `parse_args_and_config` with `fail_with_unknown_args`), so a recipe never trains with a
setting silently ignored.
"""

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import datasets
import torch
import transformers
from transformers import TrainingArguments
from trl import TrlParser

from phi3v.errors import MissingPathError, UsageError, usage_errors


def parse_recipe(parser: TrlParser, args: Sequence[str] | None = None) -> tuple:
    """Parses `args` (default: `sys.argv[1:]`) into the parser's dataclasses; a first argument ending in `.yaml` or
    `.yml` is the recipe, as if given with `--config`.

    Args:
        parser (`trl.TrlParser`): the parser over the script's dataclasses.
        args (`Sequence[str]`, *optional*): the command line without the program name.

    Raises:
        `UsageError`: naming the recipe keys or flags that match no field (TRL's own messages, which list them), or a
            value the argument classes refuse. `MissingPathError`: for a recipe that does not exist.
    """
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0].endswith((".yaml", ".yml")):
        args = ["--config", *args]
    if "--config" in args[:-1] and not Path(args[args.index("--config") + 1]).is_file():
        raise MissingPathError(f"Recipe {args[args.index('--config') + 1]} does not exist.")
    try:
        return tuple(usage_errors(parser).parse_args_and_config(args))
    except UsageError:
        raise
    except ValueError as error:  # at parse time, every ValueError is about what was given (keys, values)
        raise UsageError(str(error)) from error


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


def report_check(model: torch.nn.Module) -> None:
    """What `check_only` prints once the trainer is built: what trains, and that nothing was trained or written.

    Args:
        model (`torch.nn.Module`): the model as the trainer holds it (with its LoRA adapter, if any).
    """
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    print(
        f"Check passed: the trainer builds; {trainable:,} of {total:,} parameters train. Nothing was trained or "
        "written (check_only).",
        flush=True,
    )
