"""A synthetic product catalogue drawn with Pillow: the demo's data and the tests' data.

It is built so that a tiny vision-language model trained for a few minutes can learn it, and everything in the
answer can be read from the picture:

- the category, from the item's silhouette (tote bag, scarf, trench coat, sneakers, bucket hat, wallet) and from the
  background colour, which is fixed per category;
- the title, `"{Colour} {Pattern} {Item}"`, from the item's colour (4), its pattern (plain, striped or check) and
  the item;
- the price, from the category's base price times a pattern factor, rounded to $10: 18 prices from $190 to $2,990.

Wallets have `category3_code` "N.A.", as many DBQ products do. Image sizes vary between 160 and 640 pixels per side
(square, landscape and portrait), and items vary in size and position. Everything is deterministic from the seed.
"""

import hashlib
import io
import itertools
import json
import math
import random
import shlex
import sys
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageDraw, ImageFilter

from phi3v.preparation.cleaning import NOT_AVAILABLE
from phi3v.preparation.images import StoredImage
from phi3v.preparation.splits import split_by_product_code
from phi3v.preparation.storage import save_catalogue


JPEG_QUALITY = 90


class ProductKind(NamedTuple):
    noun: str  # last words of the title
    category1_code: str
    category2_code: str
    category3_code: str
    base_price: int  # price of the plain version, in dollars
    background: tuple[int, int, int]  # photo background, one colour per category so the category is visible


ITEMS = {
    "bag": ProductKind("Tote Bag", "WOMEN", "BAGS", "TOTE BAGS", 1290, (246, 218, 224)),
    "scarf": ProductKind("Scarf", "WOMEN", "ACCESSORIES", "SCARVES", 390, (212, 230, 248)),
    "coat": ProductKind("Trench Coat", "MEN", "OUTERWEAR", "TRENCH COATS", 1990, (226, 226, 226)),
    "shoes": ProductKind("Sneakers", "MEN", "SHOES", "SNEAKERS", 690, (216, 242, 214)),
    "hat": ProductKind("Bucket Hat", "WOMEN", "ACCESSORIES", "BUCKET HATS", 190, (250, 240, 196)),
    "wallet": ProductKind("Wallet", "MEN", "ACCESSORIES", NOT_AVAILABLE, 450, (230, 218, 246)),
}
COLOURS = {"Beige": (200, 166, 114), "Black": (28, 28, 30), "Red": (168, 28, 38), "Navy": (30, 44, 92)}
PATTERN_PRICE_FACTORS = {"Plain": 1.0, "Striped": 1.2, "Check": 1.5}

# Silhouettes in a unit box (x, y in [0, 1]); each item reads differently even at a few dozen pixels.
# fmt: off
_SILHOUETTES = {
    "bag": [
        ("polygon", [(0.14, 0.42), (0.86, 0.42), (0.92, 0.94), (0.08, 0.94)]),
        ("arc", (0.30, 0.10, 0.70, 0.70), 180, 360, 0.06),  # handle
    ],
    "scarf": [
        ("polygon", [(0.36, 0.04), (0.64, 0.04), (0.62, 0.88), (0.38, 0.88)]),
        *[("line", [(x, 0.88), (x, 0.97)], 0.015) for x in (0.40, 0.45, 0.50, 0.55, 0.60)],  # fringe
    ],
    "coat": [
        ("polygon", [(0.36, 0.04), (0.64, 0.04), (0.90, 0.18), (0.97, 0.66), (0.84, 0.68), (0.78, 0.34),
                     (0.80, 0.97), (0.20, 0.97), (0.22, 0.34), (0.16, 0.68), (0.03, 0.66), (0.10, 0.18)]),
    ],
    "shoes": [
        ("polygon", [(0.04, 0.56), (0.34, 0.52), (0.44, 0.30), (0.62, 0.28), (0.70, 0.46), (0.96, 0.58),
                     (0.96, 0.80), (0.04, 0.80)]),
    ],
    "hat": [
        ("polygon", [(0.26, 0.62), (0.30, 0.30), (0.50, 0.20), (0.70, 0.30), (0.74, 0.62)]),
        ("ellipse", (0.04, 0.54, 0.96, 0.80)),  # brim
    ],
    "wallet": [("polygon", [(0.18, 0.34), (0.82, 0.34), (0.82, 0.72), (0.18, 0.72)])],
}
# fmt: on
# Details drawn over the item in a fixed colour, as (shape, unit coordinates, line width or None, colour).
_DETAILS = {
    "coat": [("line", [(0.22, 0.52), (0.78, 0.52)], 0.04, (60, 40, 20))],  # belt
    "shoes": [("polygon", [(0.04, 0.80), (0.96, 0.80), (0.96, 0.90), (0.04, 0.90)], None, (250, 250, 250))],  # sole
    "wallet": [("line", [(0.18, 0.34), (0.50, 0.52), (0.82, 0.34)], 0.02, (240, 240, 240))],  # flap
}


def product_price(item: str, pattern: str) -> float:
    """The price of a synthetic product: its category's base price times its pattern's factor, rounded to $10."""
    # Half up, like a shop (1990 x 1.5 = 2985 -> 2990); round() would give the even 2980.
    return float(math.floor(ITEMS[item].base_price * PATTERN_PRICE_FACTORS[pattern] / 10 + 0.5) * 10)


def draw_product(item: str, colour: str, pattern: str, width: int, height: int, rng: random.Random) -> Image.Image:
    """Draws one product photo: the item's silhouette in its colour and pattern on its category's background."""
    canvas = Image.new("RGB", (width, height), ITEMS[item].background)
    size = rng.uniform(0.62, 0.88) * min(width, height)
    # size <= 0.88 * min(width, height), so a 4% margin always leaves room to move the item around.
    left = rng.uniform(0.04 * width, 0.96 * width - size)
    top = rng.uniform(0.04 * height, 0.96 * height - size)

    def to_pixels(points):
        return [(left + x * size, top + y * size) for x, y in points]

    mask = Image.new("L", (width, height), 0)
    mask_draw = ImageDraw.Draw(mask)
    for shape in _SILHOUETTES[item]:
        if shape[0] == "polygon":
            mask_draw.polygon(to_pixels(shape[1]), fill=255)
        elif shape[0] == "ellipse":
            mask_draw.ellipse(to_pixels([shape[1][:2], shape[1][2:]]), fill=255)
        elif shape[0] == "arc":
            _, box, start, end, line_width = shape
            mask_draw.arc(to_pixels([box[:2], box[2:]]), start, end, fill=255, width=max(2, round(line_width * size)))
        else:
            mask_draw.line(to_pixels(shape[1]), fill=255, width=max(1, round(shape[2] * size)))

    canvas.paste(_pattern_texture(colour, pattern, width, height, size), (0, 0), mask)
    # A dark outline (the silhouette's edge, thickened) keeps the shape readable on every background.
    outline = (
        mask.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.BoxBlur(1)).point(lambda value: 255 * (value > 24))
    )
    canvas.paste((40, 32, 28), (0, 0), outline)

    draw = ImageDraw.Draw(canvas)
    for shape, points, line_width, detail_colour in _DETAILS.get(item, []):
        if shape == "polygon":
            draw.polygon(to_pixels(points), fill=detail_colour)
        else:
            draw.line(to_pixels(points), fill=detail_colour, width=max(1, round(line_width * size)))
    return canvas


def _pattern_texture(colour: str, pattern: str, width: int, height: int, size: float) -> Image.Image:
    base = COLOURS[colour]
    accent = (20, 20, 20) if colour == "Beige" else (236, 226, 200)  # contrasting lines: dark on beige, cream on dark
    texture = Image.new("RGB", (width, height), base)
    if pattern == "Plain":
        return texture
    draw = ImageDraw.Draw(texture)
    period = max(6, round(size / 7))
    line_width = max(2, round(period / 4))
    for offset in range(0, max(width, height), period):
        draw.line([(0, offset), (width, offset)], fill=accent, width=line_width)  # horizontal stripes
        if pattern == "Check":
            draw.line([(offset, 0), (offset, height)], fill=accent, width=line_width)
    return texture


def _image_size(rng: random.Random) -> tuple[int, int]:
    long_side = rng.randrange(256, 641, 32)
    aspect_ratio = rng.choice((1.0, 1.0, 4 / 3, 3 / 2, 2.0))
    short_side = max(160, round(long_side / aspect_ratio / 16) * 16)
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def synthetic_products(num_products: int = 360, seed: int = 0) -> list[dict]:
    """Generates the catalogue rows, with the images as JPEG bytes (`StoredImage`).

    Every (item, colour, pattern) combination appears once before any appears twice, so 360 products cover the
    72 combinations five times each.

    Args:
        num_products (`int`, *optional*, defaults to `360`):
            Number of products.
        seed (`int`, *optional*, defaults to `0`):
            Seed of every random choice; the same seed gives byte-identical rows.

    Returns:
        `list[dict]`: rows with the `storage.CATALOGUE_FEATURES` columns.
    """
    if num_products < 1:
        raise ValueError(f"num_products must be at least 1, got {num_products}.")
    rng = random.Random(seed)
    combinations = list(itertools.product(ITEMS, COLOURS, PATTERN_PRICE_FACTORS))
    chosen = []
    while len(chosen) < num_products:
        rng.shuffle(combinations)
        chosen += combinations[: num_products - len(chosen)]
    product_codes = rng.sample(range(80_000_000, 81_000_000), num_products)  # DBQ-style 8-digit codes

    rows = []
    for index, ((item, colour, pattern), product_code) in enumerate(zip(chosen, product_codes, strict=True)):
        kind = ITEMS[item]
        width, height = _image_size(rng)
        buffer = io.BytesIO()
        draw_product(item, colour, pattern, width, height, rng).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        rows.append(
            {
                "product_code": str(product_code),
                "title": f"{colour} {pattern} {kind.noun}",
                "category1_code": kind.category1_code,
                "category2_code": kind.category2_code,
                "category3_code": kind.category3_code,
                "full_price": product_price(item, pattern),
                "image": StoredImage(data=buffer.getvalue(), width=width, height=height),
                "image_width": width,
                "image_height": height,
                "source_row": index,
            }
        )
    return rows


def make_synthetic_catalogue(
    output_dir: str | Path,
    num_products: int = 360,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    overwrite: bool = False,
    command: str | None = None,
) -> dict:
    """Generates a synthetic catalogue and saves it in the same format as `prepare.prepare_catalogue`.

    Args:
        output_dir (`str` or `Path`):
            Where to save the `DatasetDict` (`train`, `validation`, `test`), `manifest.json` and `dropped.jsonl`.
        num_products (`int`, *optional*, defaults to `360`):
            Number of products (about 2 seconds per 100 on one CPU core).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the products and of the split.
        validation_fraction (`float`, *optional*, defaults to `0.1`):
            Share of products in the validation split (stratified by category).
        test_fraction (`float`, *optional*, defaults to `0.1`):
            Share of products in the test split (stratified by category).
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace `output_dir` if it holds a previously prepared catalogue.
        command (`str`, *optional*):
            The command to record in the manifest; defaults to this process's command line.

    Returns:
        `dict`: the manifest, whose `source` is `{"kind": "synthetic", "seed": ..., "num_products": ..., ...}`.
    """
    rows = synthetic_products(num_products, seed)
    fingerprint = hashlib.sha256()
    for row in rows:
        metadata = {name: value for name, value in row.items() if name != "image"}
        fingerprint.update(json.dumps(metadata, sort_keys=True).encode() + row["image"].data)
    split_indices = split_by_product_code(
        [row["product_code"] for row in rows],
        [row["category3_code"] for row in rows],
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    manifest = {
        "source": {
            "kind": "synthetic",
            "generator": __name__,
            "seed": seed,
            "num_products": num_products,
            "fingerprint": f"sha256:{fingerprint.hexdigest()}",
        },
        "command": command if command is not None else shlex.join(["python", *sys.argv]),
        "rows_in": num_products,
        "seed": seed,
        "split_fractions": {"validation": validation_fraction, "test": test_fraction},
        "stratify_by": "category3_code",
    }
    return save_catalogue(output_dir, rows, split_indices, manifest, dropped=[], overwrite=overwrite)
