"""Cleaning catalogue rows: parse prices and codes, keep "N.A." categories, de-duplicate product codes.

Each function returns the rows it keeps and a `DroppedRow` for every row it does not, so no row disappears silently.
"""

import math
from collections.abc import Iterable

from . import prices
from .report import DroppedRow, DropReason


NOT_AVAILABLE = "N.A."  # how the DBQ catalogues write a missing category; kept as a value the answer can render

# Values that mean "no value" in scraped catalogues (compared lower-cased, stripped).
_MISSING_MARKERS = {"", "n.a.", "n/a", "na", "none", "null", "nan"}


def is_missing(value) -> bool:
    """Whether a raw catalogue value means "no value": `None`, NaN, or a string such as `""`, `"N.A."`, `"null"`."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in _MISSING_MARKERS


def parse_price(value, decimal_mark: str | None = ".") -> float | None:
    """Parses a catalogue price into an amount rounded to cents (`phi3v.preparation.prices`: `1,290.00`, `1.290,00`,
    `1 290,00 €`, `USD 1,290`...), or `None` for a missing value.

    Args:
        value (`float`, `int`, `str` or `None`):
            `590.0`, `1290`, `"590"`, `"$1,290.00"`, `"1.290,00 €"`, or a missing marker (`None`, NaN, `""`, `"N.A."`).
        decimal_mark (`str`, *optional*, defaults to `"."`):
            The table's decimal mark (`prices.decimal_mark`), which reads an ambiguous cell (`1,290`); `None` when it
            is not known, which refuses such a cell.

    Raises:
        `ValueError`: when the value is present but not a positive amount (e.g. `"call us"`, `"1,29,0"`, `0`), or is
            ambiguous (`prices.AmbiguousPrice`). `TypeError`: when it is neither a number nor a string.
    """
    return None if is_missing(value) else prices.parse_price(value, decimal_mark)


def parse_product_code(value) -> str | None:
    """Product codes become strings: `80712345`, `80712345.0` and `" 80712345 "` all give `"80712345"`."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def clean_rows(rows: Iterable[dict], decimal_mark: str | None = ".") -> tuple[list[dict], list[DroppedRow]]:
    """Parses the metadata of source rows and drops the rows the recipe cannot use.

    Args:
        rows (`Iterable[dict]`):
            Rows keyed by `sources.CATALOGUE_FIELDS` plus `source_row` (their index in the source).
        decimal_mark (`str`, *optional*, defaults to `"."`):
            The table's decimal mark (`prices.decimal_mark`); `None` refuses the prices it would decide (`1,290`).

    Returns:
        `tuple[list[dict], list[DroppedRow]]`: the kept rows, with `product_code`, `title` and the categories as
        strings (a missing category becomes `"N.A."`), `full_price` as a float, and the stripped image reference as
        `image_url` in place of `image`; and one `DroppedRow` per dropped row, with the first problem found.
    """
    kept, dropped = [], []
    for row in rows:
        product_code = parse_product_code(row["product_code"])
        image_url = None if is_missing(row["image"]) else str(row["image"]).strip()
        problem = _first_metadata_problem(row, product_code, image_url, decimal_mark)
        if problem is not None:
            raw_image = None if row["image"] is None else str(row["image"])
            dropped.append(DroppedRow(row["source_row"], product_code, raw_image, *problem))
            continue
        categories = {
            field: NOT_AVAILABLE if is_missing(row[field]) else str(row[field]).strip()
            for field in ("category1_code", "category2_code", "category3_code")
        }
        parsed = {
            "product_code": product_code,
            "title": " ".join(str(row["title"]).split()),
            "full_price": parse_price(row["full_price"], decimal_mark),
            "image_url": image_url,
        }
        kept.append({name: value for name, value in row.items() if name != "image"} | categories | parsed)
    return kept, dropped


def _first_metadata_problem(
    row: dict, product_code: str | None, image_url: str | None, decimal_mark: str | None
) -> tuple[DropReason, str] | None:
    if product_code is None:
        return DropReason.MISSING_PRODUCT_CODE, ""
    if is_missing(row["title"]):
        return DropReason.MISSING_TITLE, ""
    try:
        if parse_price(row["full_price"], decimal_mark) is None:
            return DropReason.MISSING_PRICE, ""
    except prices.AmbiguousPrice as error:
        return DropReason.AMBIGUOUS_PRICE, str(error)
    except (ValueError, TypeError) as error:
        return DropReason.BAD_PRICE, str(error)
    if image_url is None:
        return DropReason.MISSING_IMAGE, ""
    return None


def deduplicate_by_product_code(rows: Iterable[dict]) -> tuple[list[dict], list[DroppedRow]]:
    """Keeps the first row (in source order) of each product code and reports the others.

    Run it after the images are fetched, so that the row kept for a code is the first one that is fully usable.

    Args:
        rows (`Iterable[dict]`):
            Rows with `product_code`, `source_row` and `image_url`.

    Returns:
        `tuple[list[dict], list[DroppedRow]]`: the kept rows and a `duplicate_product_code` entry for each other row.
    """
    kept, dropped, first_row_of_code = [], [], {}
    for row in sorted(rows, key=lambda row: row["source_row"]):
        code = row["product_code"]
        if code in first_row_of_code:
            detail = f"source row {first_row_of_code[code]} has the same product code"
            dropped.append(
                DroppedRow(row["source_row"], code, row["image_url"], DropReason.DUPLICATE_PRODUCT_CODE, detail)
            )
        else:
            first_row_of_code[code] = row["source_row"]
            kept.append(row)
    return kept, dropped
