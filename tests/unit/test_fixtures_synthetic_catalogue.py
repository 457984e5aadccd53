import io
import json
import runpy
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image

from phi3v.fixtures.synthetic_catalogue import (
    COLOURS,
    ITEMS,
    PATTERN_PRICE_FACTORS,
    make_synthetic_catalogue,
    product_price,
    synthetic_products,
)
from phi3v.preparation.splits import SPLIT_NAMES
from phi3v.preparation.storage import CATALOGUE_FEATURES
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate


REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def products():
    return synthetic_products(num_products=144, seed=0)


def test_script_writes_three_splits_with_real_images(tmp_path, monkeypatch):
    output_dir = tmp_path / "synthetic"
    monkeypatch.setattr(sys, "argv", ["make_synthetic_catalogue.py", "--output", str(output_dir)])
    runpy.run_path(str(REPO_ROOT / "scripts" / "make_synthetic_catalogue.py"), run_name="__main__")

    dataset_dict = datasets.load_from_disk(str(output_dir))
    manifest = json.loads((output_dir / "manifest.json").read_text())
    assert list(dataset_dict) == list(SPLIT_NAMES)
    assert {name: len(dataset_dict[name]) for name in SPLIT_NAMES} == {"train": 288, "validation": 36, "test": 36}
    assert manifest["rows_kept"] == {"train": 288, "validation": 36, "test": 36}
    assert manifest["rows_in"] == 360
    assert manifest["rows_dropped"] == {}
    assert manifest["source"]["kind"] == "synthetic"
    assert manifest["source"]["seed"] == 0
    assert manifest["command"].endswith(f"--output {output_dir}")
    assert (output_dir / "dropped.jsonl").read_text() == ""
    for name in SPLIT_NAMES:
        assert dataset_dict[name].features == CATALOGUE_FEATURES
        row = dataset_dict[name][0]
        assert row["image"].mode == "RGB"
        assert row["image"].size == (row["image_width"], row["image_height"])
    codes = {name: set(dataset_dict[name]["product_code"]) for name in SPLIT_NAMES}
    assert not (
        codes["train"] & codes["validation"] or codes["train"] & codes["test"] or codes["validation"] & codes["test"]
    )
    # Every category is in every split (stratified: 60 products each, 6 of them held out per split).
    for name in ("validation", "test"):
        assert Counter(dataset_dict[name]["category3_code"]) == {kind.category3_code: 6 for kind in ITEMS.values()}


def test_same_seed_gives_identical_products_and_splits(tmp_path):
    first, again, other = (synthetic_products(num_products=24, seed=seed) for seed in (0, 0, 1))
    assert [row["image"].data for row in again] == [row["image"].data for row in first]
    assert [row | {"image": None} for row in again] == [row | {"image": None} for row in first]
    assert [row["product_code"] for row in other] != [row["product_code"] for row in first]
    assert [row["image"].data for row in other] != [row["image"].data for row in first]

    manifest_a = make_synthetic_catalogue(tmp_path / "a", num_products=48, seed=3, command="test")
    manifest_b = make_synthetic_catalogue(tmp_path / "b", num_products=48, seed=3, command="test")
    assert manifest_a == manifest_b  # same fingerprint, same split counts
    test_codes = [datasets.load_from_disk(str(tmp_path / name))["test"]["product_code"] for name in ("a", "b")]
    assert test_codes[0] == test_codes[1]
    assert len(test_codes[0]) == 5  # 8 per category is too few to stratify at 10%; the pool of 48 gives round(4.8)


def test_title_category_and_price_follow_the_picture_rules(products):
    nouns = {kind.noun: item for item, kind in ITEMS.items()}
    for row in products:
        colour, pattern, noun = row["title"].split(" ", 2)
        item = nouns[noun]
        assert colour in COLOURS and pattern in PATTERN_PRICE_FACTORS
        assert row["category3_code"] == ITEMS[item].category3_code
        assert row["full_price"] == product_price(item, pattern)
    assert sorted({product_price(item, pattern) for item in ITEMS for pattern in PATTERN_PRICE_FACTORS}) == [
        190, 230, 290, 390, 450, 470, 540, 590, 680, 690, 830, 1040, 1290, 1550, 1940, 1990, 2390, 2990
    ]  # fmt: skip
    assert {row["category3_code"] for row in products if row["title"].endswith("Wallet")} == {"N.A."}
    # 144 products cover each of the 72 (item, colour, pattern) combinations exactly twice.
    assert set(Counter(row["title"] for row in products).values()) == {2}
    assert (
        AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)
        .render(products[0])
        .startswith(f"Product: {products[0]['title']}, Category: ")
    )


def test_category_can_be_read_from_the_background(products):
    """A corner pixel alone identifies the category: the background colour is fixed per category."""
    for row in products:
        image = Image.open(io.BytesIO(row["image"].data)).convert("RGB")
        corner = image.getpixel((1, 1))
        nearest = min(
            ITEMS, key=lambda item: sum((a - b) ** 2 for a, b in zip(corner, ITEMS[item].background, strict=True))
        )
        assert ITEMS[nearest].category3_code == row["category3_code"]


def test_image_sizes_vary_and_files_stay_small(products):
    sizes = [(row["image_width"], row["image_height"]) for row in products]
    assert all(160 <= side <= 640 for size in sizes for side in size)
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes) and any(w == h for w, h in sizes)
    assert len(set(sizes)) > 20
    assert max(len(row["image"].data) for row in products) < 60_000
    for row in products[:10]:
        assert Image.open(io.BytesIO(row["image"].data)).size == (row["image_width"], row["image_height"])
