"""Predict product fields for image files: find the images, answer them in batches, write one parsed answer per image.

Example:

```python
>>> paths = find_images(["photos/", "extra/bag.jpg"])
>>> records = predict_images(model, processor, paths, batch_size=8)
>>> print(format_table(records))
```
"""

import csv
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from PIL import Image

from phi3v.data.formatting import DEFAULT_QUESTION
from phi3v.evaluation.generation import build_prompts, generate_answers
from phi3v.evaluation.parsing import parse_answer


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FIELDS = ["image", "title", "category", "price", "parsed", "answer", "error"]
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
            raise FileNotFoundError(f"{item} does not exist.")
    if not paths:
        raise FileNotFoundError(f"No image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {list(map(str, inputs))}.")
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
    """Image files opened only when a batch asks for them, so a large folder is never all in memory."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return [self._open(path) for path in self.paths[key]]
        return self._open(self.paths[key])

    @staticmethod
    def _open(path: Path) -> Image.Image:
        with Image.open(path) as image:
            image.load()
            return image


def predict_images(
    model,
    processor,
    paths: Sequence[Path],
    question: str = DEFAULT_QUESTION,
    unreadable: Mapping[Path, str] | None = None,
    **generation_kwargs,
) -> list[dict]:
    """Answers every readable image and parses the answers; an unreadable one gets a record with its `error`.

    Args:
        model, processor: as returned by `load_for_inference`.
        paths (`Sequence[Path]`): the image files.
        question (`str`, *optional*, defaults to `DEFAULT_QUESTION`): the question the model was trained on.
        unreadable (`Mapping[Path, str]`, *optional*): files not to send to the model, with the reason (from
            `find_unreadable_images`).
        **generation_kwargs: passed to `generate_answers` (`batch_size`, `max_new_tokens`, `num_crops`, ...).

    Returns:
        `list[dict]`: per image, in order: `image` (path), `title`, `category`, `price` (`None` when unreadable),
        `parsed` (all three read), the raw `answer` and `error` (`None`, or why the file could not be read).
    """
    unreadable = unreadable or {}
    readable = [path for path in paths if path not in unreadable]
    prompts = build_prompts(processor, len(readable), question)
    answers = (
        generate_answers(model, processor, prompts, ImageFiles(readable), **generation_kwargs) if readable else []
    )
    records = {
        path: {"image": str(path), **dataclasses.asdict(parse_answer(answer)), "answer": answer, "error": None}
        for path, answer in zip(readable, answers, strict=True)
    }
    failed = {"title": None, "category": None, "price": None, "parsed": False, "answer": None}
    return [records.get(path) or {"image": str(path), **failed, "error": unreadable[path]} for path in paths]


def format_table(records: Sequence[dict]) -> str:
    """A plain text table of the records (image, title, category, price), aligned for a terminal."""
    header = ["image", "title", "category", "price"]
    body = [
        [
            record["image"],
            record["title"] or ("(unreadable image)" if record.get("error") else "-"),
            record["category"] or "-",
            "-" if record["price"] is None else f"{record['price']:,.2f}",
        ]
        for record in records
    ]
    widths = [max(len(row[column]) for row in [header, *body]) for column in range(len(header))]
    lines = [[cell.ljust(width) for cell, width in zip(row, widths, strict=True)] for row in [header, *body]]
    lines.insert(1, ["-" * width for width in widths])
    return "\n".join("  ".join(cells).rstrip() for cells in lines)


def write_records(records: Sequence[dict], file: TextIO = sys.stdout, output_format: str = "jsonl") -> None:
    """Writes the records as JSON Lines or CSV (columns `FIELDS`).

    Args:
        records (`Sequence[dict]`): from `predict_images`.
        file (`TextIO`, *optional*, defaults to standard output): where to write.
        output_format (`str`, *optional*, defaults to `"jsonl"`): `"jsonl"` or `"csv"`.
    """
    if output_format == "jsonl":
        file.writelines(
            json.dumps({name: record[name] for name in FIELDS}, ensure_ascii=False) + "\n" for record in records
        )
    elif output_format == "csv":
        writer = csv.DictWriter(file, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    else:
        raise ValueError(f"output_format must be 'jsonl' or 'csv', got {output_format!r}.")
