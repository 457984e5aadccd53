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
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from PIL import Image

from phi3v.data.formatting import DEFAULT_QUESTION
from phi3v.evaluation.generation import build_prompts, generate_answers
from phi3v.evaluation.parsing import parse_answer


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FIELDS = ["image", "title", "category", "price", "parsed", "answer"]


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
    **generation_kwargs,
) -> list[dict]:
    """Answers every image and parses the answers.

    Args:
        model, processor: as returned by `load_for_inference`.
        paths (`Sequence[Path]`): the image files.
        question (`str`, *optional*, defaults to `DEFAULT_QUESTION`): the question the model was trained on.
        **generation_kwargs: passed to `generate_answers` (`batch_size`, `max_new_tokens`, `num_crops`, ...).

    Returns:
        `list[dict]`: per image, in order: `image` (path), `title`, `category`, `price` (`None` when unreadable),
        `parsed` (all three read) and the raw `answer`.
    """
    prompts = build_prompts(processor, len(paths), question)
    answers = generate_answers(model, processor, prompts, ImageFiles(paths), **generation_kwargs)
    return [
        {"image": str(path), **dataclasses.asdict(parse_answer(answer)), "answer": answer}
        for path, answer in zip(paths, answers, strict=True)
    ]


def format_table(records: Sequence[dict]) -> str:
    """A plain text table of the records (image, title, category, price), aligned for a terminal."""
    header = ["image", "title", "category", "price"]
    body = [
        [
            record["image"],
            record["title"] or "-",
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
