"""Every row of the splits a run reads, checked before any model loads: the layout's converter and `as_conversation`
(the rules of `phi3v.data.row_checks`, the same code that trains and asks the rows) on each row, then each image's
header (bytes a row carries, or a local file), without decoding a pixel.

A bad row is a `RowProblem`: split, row index, field and problem. By default a run stops with the first
`LISTED_ROWS` and their total (`check_splits` raises `DataError`); with `drop=True` (the scripts' `--drop_invalid_rows`)
the bad rows are left out, counted in the log, and `CheckedSplits.write_report` writes their reasons beside the run's
outputs (`dropped_rows.json`). An evaluation skips a row it cannot ask and says so (`find_row_problems`).

Example:

```python
>>> checked = check_splits({"train": rows}, conversation_check(converter), drop=True, dataset_name="my_data.json")
>>> checked.splits["train"]  # the good rows
>>> checked.problems[0]
RowProblem(split='train', row=12, field='messages[0].role', problem='an assistant turn comes first, ...')
```
"""

import io
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
from PIL import Image, UnidentifiedImageError

from phi3v.errors import BadRow, DataError

from .conversation import Conversation, as_conversation, preference_conversations
from .image_columns import undecoded


logger = logging.getLogger(__name__)
LISTED_ROWS = 5  # bad rows named in a message; the total is given too
DROPPED_ROWS_NAME = "dropped_rows.json"
# What Pillow raises for bytes it cannot identify, a file it cannot read, or one over its pixel limit.
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot be used: where it is and why."""

    split: str
    row: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"split {self.split!r}, row {self.row}, field {self.field!r}: {self.problem}"


def check_image_headers(conversation: Conversation) -> None:
    """Reads the header of each image the conversation will decode (bytes a row carries, a local file): an
    unidentifiable, missing or oversized image is a `BadRow`. Decoded PIL images are taken as they are."""
    for image, field in zip(conversation.images, conversation.image_fields, strict=True):
        if isinstance(image, Image.Image):
            continue
        path = image if isinstance(image, str | Path) else None
        if isinstance(image, Mapping):
            if image.get("bytes") is not None:
                try:
                    Image.open(io.BytesIO(image["bytes"]))
                except UnidentifiedImageError:
                    start = image["bytes"][:12]
                    raise BadRow(
                        field, f"unreadable image: Pillow cannot identify its bytes (they start {start!r})"
                    ) from None
                except _UNREADABLE as error:
                    raise BadRow(field, f"unreadable image bytes ({type(error).__name__}: {error})") from None
                continue
            path = image.get("path")
        if not Path(path).is_file():
            raise BadRow(field, f"image file {str(path)!r} does not exist")
        try:
            Image.open(path).close()
        except _UNREADABLE as error:
            raise BadRow(field, f"unreadable image file {str(path)!r} ({type(error).__name__}: {error})") from None


def conversation_check(to_conversation: Callable[[Mapping], Mapping] | None = None) -> Callable[[Mapping], None]:
    """The check of a row of a conversational layout: its converter (`phi3v.data.formats`; `None` for TRL's format),
    `as_conversation`, then its images' headers."""

    def check(row: Mapping) -> None:
        check_image_headers(as_conversation(to_conversation(row) if to_conversation is not None else row))

    return check


def preference_check(row: Mapping) -> None:
    """The check of a preference pair (`images`, `prompt`, `chosen`, `rejected`): both conversations, then the
    images' headers."""
    check_image_headers(preference_conversations(row)["chosen"])


def find_row_problems(rows: datasets.Dataset, split: str, check: Callable[[Mapping], None]) -> list[RowProblem]:
    """The problem of each bad row of a split (the first the row breaks), reading its images undecoded.

    A row that raises anything but `BadRow` while it is read is reported too, with the error, as field `(row)`:
    whatever a row holds, the run names it rather than stopping mid-training.

    Args:
        rows (`datasets.Dataset`): the split.
        split (`str`): its name, as the user gave it.
        check (`Callable`): `conversation_check(...)` or `preference_check`.
    """
    problems = []
    for index, row in enumerate(undecoded(rows)):
        try:
            check(row)
        except BadRow as error:
            problems.append(RowProblem(split, index, error.field, error.problem))
        except (DataError, KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            problems.append(RowProblem(split, index, "(row)", f"cannot be read ({type(error).__name__}: {error})"))
    return problems


def list_problems(problems: list[RowProblem], limit: int = LISTED_ROWS) -> str:
    """The first `limit` problems, one per line, and how many more."""
    lines = [f"  {problem}" for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


@dataclass
class CheckedSplits:
    """The rows kept of each split, how many each had, and the problems of the rows left out."""

    splits: dict[str, datasets.Dataset]
    rows: dict[str, int]
    problems: list[RowProblem]

    def report(self) -> dict:
        """The drop report: rows checked and dropped per split, the count per field, and every dropped row."""
        dropped = {name: sum(problem.split == name for problem in self.problems) for name in self.rows}
        by_field = {}
        for problem in self.problems:
            by_field[problem.field] = by_field.get(problem.field, 0) + 1
        return {
            "rows_checked": self.rows,
            "rows_dropped": dropped,
            "dropped_by_field": by_field,
            "dropped": [asdict(problem) for problem in self.problems],
        }

    def write_report(self, output_dir: str | Path) -> Path | None:
        """Writes `dropped_rows.json` into `output_dir` when rows were dropped; returns its path."""
        if not self.problems:
            return None
        path = Path(output_dir) / DROPPED_ROWS_NAME
        path.write_text(json.dumps(self.report(), indent=2) + "\n")
        return path


DROP_HINT = (
    "Fix those rows, or pass --drop_invalid_rows (`drop_invalid_rows: true` in a recipe) to leave them out; their "
    f"reasons are then written to {DROPPED_ROWS_NAME} beside the outputs."
)


def check_splits(
    splits: Mapping[str, datasets.Dataset],
    check: Callable[[Mapping], None],
    drop: bool = False,
    dataset_name: str = "the dataset",
    way_out: str = DROP_HINT,
) -> CheckedSplits:
    """Checks every row of every split; stops on bad rows, or leaves them out with `drop`.

    Args:
        splits (`Mapping[str, datasets.Dataset]`): the splits a run reads, by the name the user gave them.
        check (`Callable`): `conversation_check(...)` or `preference_check`.
        drop (`bool`, *optional*, defaults to `False`): leave the bad rows out instead of stopping.
        dataset_name (`str`, *optional*): named in the messages.
        way_out (`str`, *optional*): the message's last sentence (the flag that drops the rows).

    Raises:
        `DataError`: listing split, row, field and problem of the first `LISTED_ROWS` bad rows and their total
            (without `drop`), or naming a split no row of which is left (with it).
    """
    problems = [problem for name, rows in splits.items() for problem in find_row_problems(rows, name, check)]
    counts = {name: len(rows) for name, rows in splits.items()}
    if problems and not drop:
        raise DataError(
            f"{len(problems)} row(s) of {dataset_name} cannot be used:\n{list_problems(problems)}\n{way_out}"
        )
    kept = {}
    for name, rows in splits.items():
        bad = {problem.row for problem in problems if problem.split == name}
        if len(bad) == len(rows):
            raise DataError(
                f"No row of split {name!r} of {dataset_name} can be used:\n"
                f"{list_problems([p for p in problems if p.split == name])}"
            )
        kept[name] = rows.select([index for index in range(len(rows)) if index not in bad]) if bad else rows
    if problems:
        logger.warning(
            f"Dropped {len(problems)} invalid row(s) of {dataset_name} "
            f"({', '.join(f'{name}: {counts[name] - len(kept[name])} of {counts[name]}' for name in splits)}):\n"
            f"{list_problems(problems)}"
        )
    return CheckedSplits(kept, counts, problems)
