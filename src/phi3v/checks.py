"""Cheap checks of command-line values, run before any model or dataset loads (argparse `type=` functions included).

A path is either local or a Hub id (`org/name`, or a bare `name`). A string is taken as a *local* path when it
starts with `./`, `../`, `/` or `~`, has more than one `/`, uses the platform's separator, or when its first component
exists here (e.g. `outputs/demo` while `outputs/` exists): such a path that does not exist is a typo or a moved
directory, and is reported as such instead of being sent to the Hub as a malformed repo id.
"""

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

from phi3v.errors import MissingPathError, UsageError


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_like_local_path(text: str | os.PathLike) -> bool:
    """Whether `text` names a local path rather than a Hub id (see the module docstring)."""
    text = os.fspath(text)
    if Path(text).exists() or text.startswith(("./", "../", "/", "~", ".\\", "..\\")) or text in (".", ".."):
        return True
    if os.sep != "/" and os.sep in text:
        return True
    if not _HUB_ID.match(text):
        return True
    first, _, rest = text.partition("/")
    return bool(rest) and Path(first).exists()


def check_local_path(path: str | os.PathLike, what: str) -> None:
    """Raises `MissingPathError` (a `FileNotFoundError`) naming `path` when it looks local (see `looks_like_local_path`) and does not exist.

    Args:
        path (`str` or `os.PathLike`): the path or Hub id given by the user.
        what (`str`): what the path is, for the message, e.g. `"Dataset"`.
    """
    if looks_like_local_path(path) and not Path(path).exists():
        hint = " (`~` is not expanded inside quotes)" if os.fspath(path).startswith("~") else ""
        existing = next((parent for parent in Path(path).parents if parent.exists()), Path("."))
        where = (
            ""
            if existing in (Path("."), Path("/"))
            else f" ({existing} exists, but not {Path(path).relative_to(existing)} inside it)"
        )
        raise MissingPathError(f"{what} {path} does not exist{where}{hint}.")


def _int_at_least(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (`--limit`, `--batch_size`...)."""
    return _int_at_least(text, 1, "a positive integer")


def auto_bool(text: str) -> bool | None:
    """argparse type: `auto` (`None`: decide from what was saved), `true` or `false` (`--load_in_4bit`)."""
    values = {"auto": None, "true": True, "false": False}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {text!r}")
    return values[text.lower()]


def local_or_hub_path(text: str) -> str:
    """argparse type: a path that exists, or a Hub id; a local-looking path that does not exist is refused."""
    try:
        check_local_path(text, "path")
    except FileNotFoundError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def existing_path(text: str) -> str:
    """argparse type: a local path that exists."""
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (`--eval_limit 0` is refused by `positive_int`; this takes it)."""
    return _int_at_least(text, 0, "an integer >= 0")


# Attention implementations transformers loads Phi-3-V with; `None` (the default) is sdpa.
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_choice(name: str, value, choices: Sequence, allow_none: bool = False) -> None:
    """Raises `UsageError` naming `name`, `value` and the list when `value` is not one of `choices`.

    TRL's parser checks no choice for a `str` field, and argparse none for a recipe's YAML value, so the recipe
    fields with a closed set of values (`task`, `dataset_format`, ...) are checked here.

    Args:
        name (`str`): the flag or recipe key, e.g. `"--task"`.
        value: the value given.
        choices (`Sequence`): the values accepted.
        allow_none (`bool`, *optional*, defaults to `False`): whether `None` (not given) is accepted.
    """
    if (value is None and allow_none) or value in choices:
        return
    raise UsageError(f"{name} {value!r} is not one of {list(choices)}.")


def torch_device(text: str) -> str:
    """argparse type: a torch device string (`cpu`, `cuda`, `cuda:1`, `mps`, ...), checked without using it."""
    import torch  # only when a device flag is parsed

    try:
        torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a device: {text!r}; e.g. cpu, cuda, cuda:1 or mps") from None
    return text


def port(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535 (0 would pick a random one the user cannot know)."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value
