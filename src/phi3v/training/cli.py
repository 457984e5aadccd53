"""Command line of the training scripts: `TrlParser`, with the recipe given as a positional path or `--config`.

    python scripts/sft.py recipes/smoke.yaml --max_steps 10
    python scripts/sft.py --config recipes/smoke.yaml --max_steps 10     # the same

YAML keys set the defaults and command-line flags override them. A key or flag that no argument takes fails at
start-up, naming it, so a recipe never trains with a setting silently ignored.
"""

import sys
from collections.abc import Sequence

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
