import random
from collections import Counter

import pytest

from phi3v.preparation.splits import SPLIT_NAMES, split_by_product_code


def catalogue(seed=0):
    """300 rows: 200 product codes (some on several rows), 4 large categories and 3 tiny ones."""
    rng = random.Random(seed)
    codes, strata = [], []
    for index in range(200):
        category = ["BAGS", "SCARVES", "COATS", "SHOES"][index % 4] if index < 188 else f"RARE{index % 3}"
        for _ in range(rng.choice((1, 1, 2))):
            codes.append(f"{80_000_000 + index}")
            strata.append(category)
    return codes, strata


def codes_of(split_indices, codes):
    return {name: {codes[index] for index in indices} for name, indices in split_indices.items()}


def test_splits_never_share_a_product_code_and_cover_every_row():
    codes, strata = catalogue()
    splits = split_by_product_code(codes, strata, validation_fraction=0.1, test_fraction=0.15, seed=0)
    assert sorted(index for name in SPLIT_NAMES for index in splits[name]) == list(range(len(codes)))
    split_codes = codes_of(splits, codes)
    assert not split_codes["train"] & split_codes["validation"]
    assert not split_codes["train"] & split_codes["test"]
    assert not split_codes["validation"] & split_codes["test"]


def test_same_seed_same_splits_regardless_of_row_order():
    codes, strata = catalogue()
    first = split_by_product_code(codes, strata, seed=7)
    assert split_by_product_code(codes, strata, seed=7) == first
    order = list(range(len(codes)))
    random.Random(1).shuffle(order)
    shuffled = split_by_product_code([codes[i] for i in order], [strata[i] for i in order], seed=7)
    assert codes_of(shuffled, [codes[i] for i in order]) == codes_of(first, codes)
    assert codes_of(split_by_product_code(codes, strata, seed=8), codes) != codes_of(first, codes)


def test_large_categories_are_stratified_and_small_ones_pooled():
    codes, strata = catalogue()
    splits = split_by_product_code(codes, strata, validation_fraction=0.1, test_fraction=0.2, seed=0)
    category_of_code = dict(zip(codes, strata, strict=True))
    per_split = {
        name: Counter(category_of_code[code] for code in split) for name, split in codes_of(splits, codes).items()
    }
    for category in ("BAGS", "SCARVES", "COATS", "SHOES"):  # 47 codes each
        assert per_split["test"][category] == 9  # round(47 * 0.2)
        assert per_split["validation"][category] == 5  # round(47 * 0.1)
    # 12 rare codes in 3 categories of 4: too few alone, split together (round(12 * 0.2) = 2, round(12 * 0.1) = 1).
    rare_counts = {name: sum(count for category, count in per_split[name].items() if category.startswith("RARE"))
                   for name in SPLIT_NAMES}  # fmt: skip
    assert rare_counts == {"train": 9, "validation": 1, "test": 2}


def test_zero_fractions_give_empty_splits():
    codes, strata = catalogue()
    splits = split_by_product_code(codes, strata, validation_fraction=0.0, test_fraction=0.0)
    assert splits["validation"] == splits["test"] == []
    assert len(splits["train"]) == len(codes)


@pytest.mark.parametrize(
    ("validation_fraction", "test_fraction", "message"),
    [(-0.1, 0.1, "validation_fraction"), (0.1, 1.0, "test_fraction"), (0.5, 0.5, "leave rows for training")],
)
def test_bad_fractions_are_rejected(validation_fraction, test_fraction, message):
    with pytest.raises(ValueError, match=message):
        split_by_product_code(["a"], ["x"], validation_fraction=validation_fraction, test_fraction=test_fraction)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="one of each per row"):
        split_by_product_code(["a", "b"], ["x"])
