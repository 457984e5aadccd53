"""Output paths, checked before any work: nothing a user made is overwritten, and no output lands on an input.

Every directory a script of this project writes holds a small marker file, `.phi3v-output.json`, that says which kind
of output it is (`catalogue`, `preferences`, `evaluation`, `training`, `model`) and which script wrote it. A directory
is *this project's* when it holds the marker.

The rules, shared by every script:

- an output directory that exists as a file is refused;
- an output equal to an input, inside one or holding one is refused (even with `--overwrite`);
- a non-empty output directory is refused unless `--overwrite` is given, and even then unless it is this project's
  output of the same kind: a directory the user made is never written into, let alone deleted.

Example:

```python
>>> output_dir = prepare_output_dir("outputs/pairs", overwrite=False, inputs=["data/synthetic"], kind="preferences")
```
"""

import json
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from phi3v.errors import ExistingPathError


MARKER_NAME = ".phi3v-output.json"


class OutputPathError(ExistingPathError):
    """An output path that would overwrite or delete something, or that collides with an input."""


def output_kind(path: str | Path) -> str | None:
    """The kind of project output a directory holds (from its marker), or `None` when it is not this project's."""
    return _marker_field(path, "kind")


def output_writer(path: str | Path) -> str | None:
    """The script that wrote a project output directory (its marker's `written_by`), or `None` when unknown."""
    writer = _marker_field(path, "written_by")
    return None if writer == "unknown" else writer


def _marker_field(path: str | Path, field: str) -> str | None:
    marker = Path(path) / MARKER_NAME
    if marker.is_file():
        try:
            return json.loads(marker.read_text()).get(field, "unknown")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return "unknown"
    return None


def user_entries(path: str | Path) -> list[Path]:
    """The entries of a directory other than the marker (an empty list for a missing directory)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(entry for entry in path.iterdir() if entry.name != MARKER_NAME)


def check_not_an_input(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuses an output path that is an input, lies inside one or contains one.

    Args:
        output (`str` or `Path`): the output file or directory.
        inputs (`Iterable`): input paths; `None` and strings that are not local paths (Hub ids) are ignored.

    Raises:
        `OutputPathError`: naming both paths.
    """
    output_path = Path(os.path.realpath(Path(output).expanduser()))
    for source in inputs:
        if source is None or not Path(source).expanduser().exists():
            continue
        input_path = Path(os.path.realpath(Path(source).expanduser()))
        if output_path == input_path or output_path in input_path.parents or input_path in output_path.parents:
            relation = "is" if output_path == input_path else "overlaps"
            raise OutputPathError(
                f"Output {output} {relation} the input {source}; writing there would destroy the input. "
                "Choose another output path."
            )


def check_output_dir(
    path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path | None] = (), kind: str | None = None
) -> None:
    """Checks, without touching anything, that `path` may receive a script's output directory.

    Args:
        path (`str` or `Path`): the output directory.
        overwrite (`bool`, *optional*, defaults to `False`): whether the user allowed replacing earlier output.
        inputs (`Iterable`, *optional*): the script's input paths, which the output must not touch.
        kind (`str`, *optional*): the kind of output; `--overwrite` only replaces output of the same kind.

    Raises:
        `OutputPathError`: naming the path and what to do instead.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"Output directory {path} exists and is a file; choose a directory path.")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"Output directory {path} lies under {parent}, which is a file.")
    check_not_an_input(path, inputs)
    if not user_entries(path):
        return
    found = output_kind(path)
    if found is None:
        raise OutputPathError(
            f"Output directory {path} is not empty and was not written by this project (no {MARKER_NAME}); refusing "
            "to delete or write into it, with or without --overwrite. Choose another directory."
        )
    if kind is not None and found != kind:
        raise OutputPathError(
            f"Output directory {path} holds this project's {found} output, not {kind} output; refusing to replace "
            "it, with or without --overwrite. Choose another directory."
        )
    if not overwrite:
        raise OutputPathError(f"Output directory {path} is not empty; pass --overwrite to replace it.")


def mark_output_dir(path: str | Path, kind: str, written_by: str) -> Path:
    """Creates `path` (and its parents) if needed and writes the marker that makes it this project's output."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = {"kind": kind, "written_by": written_by, "created": datetime.now(UTC).isoformat()}
    (path / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
    return path


def prepare_output_dir(
    path: str | Path,
    overwrite: bool = False,
    inputs: Iterable[str | Path | None] = (),
    kind: str = "output",
    written_by: str = "phi3v",
) -> Path:
    """Checks `path` (see `check_output_dir`), empties it when `overwrite` allows, then creates and marks it.

    Only a directory that `check_output_dir` accepted is emptied: this project's output of the same kind.

    Args:
        path (`str` or `Path`): the output directory.
        overwrite (`bool`, *optional*, defaults to `False`): replace this project's earlier output of this kind.
        inputs (`Iterable`, *optional*): input paths the output must not touch.
        kind (`str`, *optional*, defaults to `"output"`): the kind recorded in the marker.
        written_by (`str`, *optional*, defaults to `"phi3v"`): the script recorded in the marker.

    Returns:
        `Path`: the (empty but for the marker) output directory.
    """
    check_output_dir(path, overwrite, inputs, kind)
    empty_output_dir(path)
    return mark_output_dir(path, kind, written_by)


def empty_output_dir(path: str | Path) -> None:
    """Deletes everything in `path` but the marker. Only for a directory `check_output_dir` let a script replace."""
    for entry in user_entries(path):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_output_file(path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path | None] = ()) -> None:
    """Checks that a single output file may be written: not a directory, not an input, not an existing file unless
    `overwrite`, and under a directory (not a file).

    Raises:
        `OutputPathError`: naming the path.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"Output file {path} is a directory; give a file path.")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"Output file {path} lies under {parent}, which is a file.")
    check_not_an_input(path, inputs)
    if path.exists() and not overwrite:
        raise OutputPathError(f"Output file {path} exists; pass --overwrite to replace it.")
