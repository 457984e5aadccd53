"""Train / validation / test splits that never share a product code, stratified by category where counts allow."""

import math
import random
from collections.abc import Sequence

from phi3v.errors import UsageError


SPLIT_NAMES = ("train", "validation", "test")
POOLED_STRATUM = "<pooled small categories>"


def split_by_product_code(
    product_codes: Sequence[str],
    strata: Sequence[str],
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Assigns rows to `train`, `validation` and `test` so that all rows of a product code land in the same split.

    Product codes are grouped by stratum (the stratum of a code's first row). In a stratum with enough codes that
    each held-out split gets at least one (`count * fraction >= 1`), `round(count * fraction)` codes go to each
    held-out split; the strata too small for that are pooled and split together. The result depends only on the
    codes, strata and seed, not on the row order.

    Args:
        product_codes (`Sequence[str]`):
            Product code of each row.
        strata (`Sequence[str]`):
            Category of each row to stratify by, e.g. its `category3_code`.
        validation_fraction (`float`, *optional*, defaults to `0.1`):
            Share of product codes for the validation split.
        test_fraction (`float`, *optional*, defaults to `0.1`):
            Share of product codes for the test split.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the shuffle; the same seed gives the same splits.

    Returns:
        `dict[str, list[int]]`: sorted row indices for each of `SPLIT_NAMES`.
    """
    if len(product_codes) != len(strata):
        raise ValueError(f"Got {len(product_codes)} product codes but {len(strata)} strata; give one of each per row.")
    check_split_fractions(validation_fraction, test_fraction)

    rows_of_code: dict[str, list[int]] = {}
    codes_of_stratum: dict[str, list[str]] = {}
    for index, (code, stratum) in enumerate(zip(product_codes, strata, strict=True)):
        if code not in rows_of_code:
            rows_of_code[code] = []
            codes_of_stratum.setdefault(stratum, []).append(code)
        rows_of_code[code].append(index)

    held_out = [fraction for fraction in (validation_fraction, test_fraction) if fraction > 0]
    groups: dict[str, list[str]] = {}
    for stratum, codes in codes_of_stratum.items():
        large_enough = all(len(codes) * fraction >= 1 for fraction in held_out)
        groups.setdefault(stratum if large_enough else POOLED_STRATUM, []).extend(codes)

    rng = random.Random(seed)
    split_of_code = {}
    for group in sorted(groups):
        codes = sorted(groups[group])
        rng.shuffle(codes)
        num_test = _round_half_up(len(codes) * test_fraction)
        num_validation = _round_half_up(len(codes) * validation_fraction)
        for position, code in enumerate(codes):
            if position < num_test:
                split_of_code[code] = "test"
            elif position < num_test + num_validation:
                split_of_code[code] = "validation"
            else:
                split_of_code[code] = "train"

    splits = {name: [] for name in SPLIT_NAMES}
    for code, indices in rows_of_code.items():
        splits[split_of_code[code]].extend(indices)
    return {name: sorted(indices) for name, indices in splits.items()}


def check_split_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Raises a `ValueError` unless both fractions are in [0, 1) and leave rows for training."""
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise UsageError(f"{name} must be in [0, 1), got {fraction}.")
    if validation_fraction + test_fraction >= 1:
        raise UsageError(
            f"validation_fraction + test_fraction must leave rows for training, got "
            f"{validation_fraction} + {test_fraction}."
        )


def _round_half_up(value: float) -> int:
    # Python's round() rounds half to even (round(2.5) == 2); half up is what people expect from "10% of 25".
    return math.floor(value + 0.5)
