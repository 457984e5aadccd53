"""Offline stand-ins for the Cookbook's three data sources, in their exact Hub schemas, drawn with Pillow.

`make_reproduction_fixtures(output_dir)` writes, with `save_to_disk`:

    docvqa_1200_examples/          # like nielsr/docvqa_1200_examples: train and test
    the_cauldron/docvqa/           # like HuggingFaceM4/the_cauldron, config docvqa: train only
    the_cauldron/hateful_memes/    #   config hateful_memes: train only
    the_cauldron/nlvr2/            #   config nlvr2: train only, 2 images per row, some rows with 2 turns
    manifest.json                  # seed, row counts, the command

Every answer can be read from the pictures, so a tiny model that trains for a minute can learn some of it:

- DocVQA: a page with grey text lines and one big coloured shape; the questions ask its colour (`Red`, `Green`,
  `Blue`, `Black`) or its shape (`circle`, `square`, `triangle`).
- Hateful Memes: a meme with a caption bar; it is "hateful" (`yes`) exactly when its symbol is a red triangle, and
  not (`no`) when it is a green circle. Half of each.
- NLVR2: two pictures of one coloured shape each; "The left image shows a red shape." is `True` for half the rows,
  and every other row asks a second turn, "Both images show the same colour." (trained, not evaluated).

The questions are this module's own wording (the Hub's exact `user` texts for these configs were not available);
only the schema is copied. Everything is deterministic from the seed; the default sizes build in a few seconds.
"""

import json
import random
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import datasets
from datasets import Features, List, Value
from PIL import Image, ImageDraw

from phi3v.preparation.storage import MANIFEST_NAME, check_output_dir


QUERY_LANGUAGES = ("de", "en", "es", "fr", "it")
DOCVQA_FEATURES = Features(
    {
        "id": Value("string"),
        "image": datasets.Image(),
        "query": {language: Value("string") for language in QUERY_LANGUAGES},
        "answers": List(Value("string")),
        "words": List(Value("string")),
        "bounding_boxes": List(List(Value("float32"), length=4)),
        "answer": {
            "match_score": Value("float64"),
            "matched_text": Value("string"),
            "start": Value("int64"),
            "text": Value("string"),
        },
    }
)
CAULDRON_FEATURES = Features(
    {
        "images": List(datasets.Image()),
        "texts": List({"user": Value("string"), "assistant": Value("string"), "source": Value("string")}),
    }
)
DEFAULT_ROWS = {"docvqa_train": 60, "docvqa_test": 40, "cauldron_docvqa": 60, "hateful_memes": 120, "nlvr2": 120}
FIXTURE_EVAL_ROWS = 40  # the fixtures' stand-in for the published `train[:500]` slice of Hateful Memes and NLVR2

COLOURS = {"Red": (210, 35, 45), "Green": (40, 165, 70), "Blue": (40, 80, 210), "Black": (20, 20, 24)}
SHAPES = ("circle", "square", "triangle")
QUESTIONS = {
    "colour": {
        "de": "Welche Farbe hat die Form?",
        "en": "What colour is the shape?",
        "es": "¿De qué color es la forma?",
        "fr": "De quelle couleur est la forme ?",
        "it": "Di che colore è la forma?",
    },
    "shape": {
        "de": "Welche Form ist gezeichnet?",
        "en": "What shape is drawn?",
        "es": "¿Qué forma está dibujada?",
        "fr": "Quelle forme est dessinée ?",
        "it": "Quale forma è disegnata?",
    },
}
MEME_QUESTION = "Is this meme hateful? Answer yes or no."
LEFT_RED_STATEMENT = "The left image shows a red shape."
SAME_COLOUR_STATEMENT = "Both images show the same colour."


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour: tuple) -> None:
    """Draws a filled `circle`, `square` or `triangle` in `box` (left, top, right, bottom)."""
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=colour)


def shape_picture(rng: random.Random, shape: str, colour: str, size: int, background=(250, 250, 250)) -> Image.Image:
    """A `size` x `size` picture of one big shape at a random place."""
    image = Image.new("RGB", (size, size), background)
    side = rng.randint(size // 2, size * 3 // 4)
    left, top = rng.randint(2, size - side - 2), rng.randint(2, size - side - 2)
    draw_shape(ImageDraw.Draw(image), shape, (left, top, left + side, top + side), COLOURS[colour])
    return image


def document_page(rng: random.Random, shape: str, colour: str) -> tuple[Image.Image, list[str], list[list[float]]]:
    """A 96 x 112 page: grey "text" lines at the top, a big coloured shape below; with its OCR words and boxes."""
    width, height = 96, 112
    page = Image.new("RGB", (width, height), (252, 252, 248))
    draw = ImageDraw.Draw(page)
    boxes = []
    for line in range(3):
        top, right = 6 + 9 * line, rng.randint(40, 88)
        draw.rectangle((6, top, right, top + 4), fill=(150, 150, 150))
        boxes.append([6 / width, top / height, right / width, (top + 4) / height])
    side = rng.randint(40, 56)
    left, top = rng.randint(4, width - side - 4), rng.randint(36, height - side - 4)
    draw_shape(draw, shape, (left, top, left + side, top + side), COLOURS[colour])
    return page, ["Report", "Page", str(rng.randint(1, 9))], boxes


def docvqa_rows(rng: random.Random, split: str, num_rows: int) -> list[dict]:
    """Rows of `nielsr/docvqa_1200_examples`: one question per page, colour and shape questions alternating."""
    rows = []
    for index in range(num_rows):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        page, words, boxes = document_page(rng, shape, colour)
        kind = ("colour", "shape")[index % 2]
        answers = [colour, colour.lower()] if kind == "colour" else [shape, f"a {shape}"]
        rows.append(
            {
                "id": f"{split}_{index}",
                "image": page,
                "query": dict(QUESTIONS[kind]),
                "answers": answers,
                "words": words,
                "bounding_boxes": boxes,
                "answer": {"match_score": 0.0, "matched_text": "", "start": -1, "text": answers[0]},
            }
        )
    return rows


def cauldron_docvqa_rows(rng: random.Random, num_rows: int) -> list[dict]:
    """Rows of the_cauldron `docvqa`: one page, both questions as two turns."""
    rows = []
    for _ in range(num_rows):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        page, _, _ = document_page(rng, shape, colour)
        texts = [
            {"user": QUESTIONS["colour"]["en"], "assistant": colour, "source": "docvqa"},
            {"user": QUESTIONS["shape"]["en"], "assistant": shape, "source": "docvqa"},
        ]
        rows.append({"images": [page], "texts": rng.sample(texts, k=2)})
    return rows


def hateful_memes_rows(rng: random.Random, num_rows: int) -> list[dict]:
    """Rows of the_cauldron `hateful_memes`: hateful exactly when the symbol is a red triangle."""
    labels = ["yes", "no"] * (num_rows // 2) + ["yes"] * (num_rows % 2)
    rng.shuffle(labels)
    rows = []
    for label in labels:
        background = tuple(rng.randint(170, 240) for _ in range(3))
        meme = shape_picture(rng, *(("triangle", "Red") if label == "yes" else ("circle", "Green")), 80, background)
        draw = ImageDraw.Draw(meme)
        draw.rectangle((0, 0, 79, 11), fill=(255, 255, 255))  # the caption bar, with "words" in black
        draw.rectangle((4, 4, rng.randint(30, 74), 7), fill=(0, 0, 0))
        rows.append(
            {"images": [meme], "texts": [{"user": MEME_QUESTION, "assistant": label, "source": "hateful_memes"}]}
        )
    return rows


def nlvr2_rows(rng: random.Random, num_rows: int) -> list[dict]:
    """Rows of the_cauldron `nlvr2`: two pictures; "The left image shows a red shape." is true for half the rows;
    every other row has a second turn, whether both pictures have the same colour."""
    left_red = [True, False] * (num_rows // 2) + [True] * (num_rows % 2)
    rng.shuffle(left_red)
    rows = []
    for index, is_red in enumerate(left_red):
        left_colour = "Red" if is_red else rng.choice([c for c in COLOURS if c != "Red"])
        right_colour = rng.choice(list(COLOURS))
        images = [shape_picture(rng, rng.choice(SHAPES), colour, 64) for colour in (left_colour, right_colour)]
        texts = [{"user": LEFT_RED_STATEMENT, "assistant": str(is_red), "source": "nlvr2"}]
        if index % 2:
            same = str(left_colour == right_colour)
            texts.append({"user": SAME_COLOUR_STATEMENT, "assistant": same, "source": "nlvr2"})
        rows.append({"images": images, "texts": texts})
    return rows


def make_reproduction_fixtures(
    output_dir: str | Path,
    seed: int = 0,
    num_rows: dict[str, int] | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> dict:
    """Writes the four fixture datasets and `manifest.json` under `output_dir`.

    Args:
        output_dir (`str` or `Path`): Where to write; an existing non-empty directory is replaced only with
            `overwrite=True` and only when it holds a `manifest.json` (a directory written here before).
        seed (`int`, *optional*, defaults to 0): Seed of every drawing; the same seed gives the same rows.
        num_rows (`dict[str, int]`, *optional*): Rows per dataset, keyed as `DEFAULT_ROWS`; missing keys keep the
            default.
        overwrite (`bool`, *optional*, defaults to `False`): Replace a previous fixture directory.
        command (`str`, *optional*): The command to record; defaults to this process's command line.

    Returns:
        `dict`: the manifest.
    """
    unknown = sorted(set(num_rows or {}) - set(DEFAULT_ROWS))
    if unknown:
        raise ValueError(f"num_rows keys {unknown} are not among {sorted(DEFAULT_ROWS)}.")
    counts = DEFAULT_ROWS | (num_rows or {})
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)

    def rng(name):  # one stream per dataset, so resizing one leaves the others unchanged
        return random.Random(f"{seed}-{name}")

    docvqa = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list(
                docvqa_rows(rng(f"docvqa_{split}"), split, counts[f"docvqa_{split}"]), features=DOCVQA_FEATURES
            )
            for split in ("train", "test")
        }
    )
    cauldron = {
        "docvqa": cauldron_docvqa_rows(rng("cauldron_docvqa"), counts["cauldron_docvqa"]),
        "hateful_memes": hateful_memes_rows(rng("hateful_memes"), counts["hateful_memes"]),
        "nlvr2": nlvr2_rows(rng("nlvr2"), counts["nlvr2"]),
    }
    manifest = {
        "seed": seed,
        "rows": counts,
        "eval_rows": FIXTURE_EVAL_ROWS,
        "command": command if command is not None else shlex.join(["python", *sys.argv]),
    }
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.", suffix=".partial"))
    try:
        staged = staging_dir / "fixtures"
        docvqa.save_to_disk(staged / "docvqa_1200_examples")
        for config, rows in cauldron.items():
            train = datasets.Dataset.from_list(rows, features=CAULDRON_FEATURES)
            datasets.DatasetDict({"train": train}).save_to_disk(staged / "the_cauldron" / config)
        (staged / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staged.rename(output_dir)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return manifest
