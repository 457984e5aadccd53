"""Predict for image files: find the images, answer them in batches, write one answer per image (with the fields of
the catalogue's answer template read from it).

Example:

```python
>>> paths = find_images(["photos/", "extra/bag.jpg"])
>>> records = predict_images(model, processor, paths, load_task("outputs/demo"), batch_size=8)
>>> print(format_table(records))
```
"""

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from PIL import Image

from phi3v.errors import MissingPathError
from phi3v.inference.generation import generate_answers
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks import Task
from phi3v.tasks.catalogue import prompt_messages


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# Errors Pillow raises for a file it cannot identify, a truncated or corrupt one, or one over its pixel limit.
UNREADABLE_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files named by `inputs`: files as given, folders expanded to their images (sorted, not recursive).

    Args:
        inputs (`Sequence[str | Path]`): image paths and/or folders.

    Raises:
        `FileNotFoundError`: for a path that does not exist, or when no image is found at all.
    """
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise MissingPathError(f"{item} does not exist.")
    if not paths:
        raise MissingPathError(f"No image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {list(map(str, inputs))}.")
    return paths


def find_unreadable_images(paths: Sequence[Path]) -> dict[Path, str]:
    """The image files Pillow cannot decode (0-byte, truncated, corrupt, not an image), with the reason for each.

    Cheap enough to run on a whole folder before the model loads: JPEGs decode at a reduced scale (`draft`), which
    still reads the whole file, so a truncated one is caught.

    Args:
        paths (`Sequence[Path]`): the image files, e.g. from `find_images`.

    Returns:
        `dict[Path, str]`: each unreadable path and why, in the order of `paths`.
    """
    unreadable = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (64, 64))
                image.load()
        except UNREADABLE_IMAGE_ERRORS as error:
            unreadable[path] = f"{type(error).__name__}: {error}"
    return unreadable


class ImageFiles(Sequence):
    """Image files opened only when a batch asks for them, so a large folder is never all in memory; each item is
    the one-image list of its prompt."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return [[self._open(path)] for path in self.paths[key]]
        return [self._open(self.paths[key])]

    @staticmethod
    def _open(path: Path) -> Image.Image:
        with Image.open(path) as image:
            image.load()
            return image


def predict_images(
    model,
    processor,
    paths: Sequence[Path],
    task: Task,
    question: str | None = None,
    unreadable: Mapping[Path, str] | None = None,
    **generation_kwargs,
) -> list[dict]:
    """Answers every readable image and reads the task's fields from the answers (the catalogue's template fields;
    none for free text); an unreadable image gets a record with its `error`.

    Args:
        model, processor: as returned by `load_for_inference`.
        paths (`Sequence[Path]`): the image files.
        task ([`~phi3v.tasks.Task`]): what the model was trained for: its question and how its answers are read.
        question (`str`, *optional*): asked instead of the task's question.
        unreadable (`Mapping[Path, str]`, *optional*): files not to send to the model, with the reason (from
            `find_unreadable_images`).
        **generation_kwargs: passed to `generate_answers` (`batch_size`, `max_new_tokens`, `num_crops`, ...).

    Returns:
        `list[dict]`: per image, in order: `image` (path), each of the task's fields (`None` when unreadable) and
        `parsed` (all read) when the task has fields, the raw `answer` and `error` (`None`, or why the file could not be read).
    """
    unreadable = unreadable or {}
    readable = [path for path in paths if path not in unreadable]
    prompts = [build_prompt(processor, prompt_messages(question or task.question))] * len(readable)
    answers = (
        generate_answers(model, processor, prompts, ImageFiles(readable), **generation_kwargs) if readable else []
    )
    fields = dict.fromkeys(task.answer_fields) | {"parsed": False} if task.answer_fields else {}
    records, readable_answers = [], iter(answers)
    for path in paths:
        if path in unreadable:
            records.append({"image": str(path), **fields, "answer": None, "error": unreadable[path]})
            continue
        answer = next(readable_answers)
        record = {"image": str(path)}
        if task.answer_fields:
            parsed = task.parse(answer)
            record |= parsed | {"parsed": None not in parsed.values()}
        records.append(record | {"answer": answer, "error": None})
    return records


def format_table(records: Sequence[dict]) -> str:
    """A plain text table of the records (the image, then the template's fields, or the answer), for a terminal; an
    unreadable image says so."""
    header = [name for name in records[0] if name not in ("parsed", "answer", "error")] if records else ["image"]
    if header == ["image"]:
        header.append("answer")
    body = [
        [record["image"], "(unreadable image)"] + ["-"] * (len(header) - 2)
        if record.get("error")
        else [_cell(record[name]) for name in header]
        for record in records
    ]
    widths = [max(len(row[column]) for row in [header, *body]) for column in range(len(header))]
    lines = [[cell.ljust(width) for cell, width in zip(row, widths, strict=True)] for row in [header, *body]]
    lines.insert(1, ["-" * width for width in widths])
    return "\n".join("  ".join(cells).rstrip() for cells in lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def write_records(records: Sequence[dict], file: TextIO = sys.stdout, output_format: str = "jsonl") -> None:
    """Writes the records as JSON Lines or CSV (one column per key of the records).

    Args:
        records (`Sequence[dict]`): from `predict_images`.
        file (`TextIO`, *optional*, defaults to standard output): where to write.
        output_format (`str`, *optional*, defaults to `"jsonl"`): `"jsonl"` or `"csv"`.
    """
    if output_format == "jsonl":
        file.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    elif output_format == "csv":
        writer = csv.DictWriter(file, fieldnames=list(records[0]) if records else ["image", "answer"])
        writer.writeheader()
        writer.writerows(records)
    else:
        raise ValueError(f"output_format must be 'jsonl' or 'csv', got {output_format!r}.")
