"""A user's mistakes, told apart from the project's own bugs: one line on standard error and an exit status, instead
of a traceback.

A mistake in what the user gave (an argument, a path, a name, a choice) is a `UsageError` and exits with status 2, as
`argparse` does; a problem in the data (a row, a split, an image reference) is a `DataError` and exits with status 1.
Every entry script runs its `main` through `run_script`, which prints `error: <message>` for these and nothing else:
any other exception is a bug and keeps its traceback. `PHI3V_DEBUG=1` shows the traceback of a user error too.

The classes also derive from the built-in type the same mistake raised before (`ValueError`, `FileNotFoundError`,
`FileExistsError`), so library callers that catch those keep working.
"""

import argparse
import os
import sys
from collections.abc import Callable


DEBUG_VARIABLE = "PHI3V_DEBUG"


class UserError(Exception):
    """A mistake of the user's, reported as one message; `exit_status` is what the script exits with."""

    exit_status = 1


class UsageError(UserError, ValueError):
    """A bad argument value, choice or name (exit status 2)."""

    exit_status = 2


class DataError(UserError, ValueError):
    """A dataset, split or row that cannot be used as it is (exit status 1)."""

    exit_status = 1


class MissingPathError(UserError, FileNotFoundError):
    """A path given by the user that does not exist (exit status 2: it is an argument)."""

    exit_status = 2


class ExistingPathError(UserError, FileExistsError):
    """An output path that holds something the run must not replace (exit status 2: it is an argument)."""

    exit_status = 2


class BadRow(DataError):
    """One row that cannot be used as it is: the `field` at fault (a path into the row, e.g. `messages[0].role`) and
    the `problem` with it. `phi3v.data.validation` collects them over every row a run reads, with split and row.

    Args:
        field (`str`): where in the row, as the dataset names it (`texts[2].assistant`, `images[1]`, `title`).
        problem (`str`): what is wrong there and, where there is one, the way out.
    """

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r}: {problem}")
        self.field = field
        self.problem = problem


class MissingDataFileError(BadRow, FileNotFoundError):
    """A file a dataset's row names that does not exist (exit status 1: it is the data's)."""


def debugging() -> bool:
    """Whether `PHI3V_DEBUG` asks for tracebacks (any value but empty, `0` or `false`)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Makes `parser` raise `UsageError` for a bad flag instead of printing its whole usage (hundreds of lines for
    TRL's) and exiting, so that mistake prints as one line too; `--help` still prints the usage.

    Args:
        parser (`argparse.ArgumentParser`): the script's parser (TRL's `TrlParser` included); returned.
    """

    def error(message: str):
        raise UsageError(f"{message} (`{parser.prog} --help` lists the arguments)")

    parser.error = error
    return parser


def run_script(entry: Callable[[], object]) -> None:
    """Runs a script's `entry` (parsing included); a `UserError` prints `error: <message>` on standard error and exits
    with its status, unless `PHI3V_DEBUG` is set. Other exceptions propagate with their traceback.

    Args:
        entry (`Callable[[], object]`): the script's work, e.g. `lambda: main(*make_parser().parse())`.
    """
    try:
        entry()
    except UserError as error:
        if debugging():
            raise
        sys.stdout.flush()
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(error.exit_status)
