import math

import pytest

from phi3v.preparation.cleaning import clean_rows, deduplicate_by_product_code, parse_price, parse_product_code
from phi3v.preparation.report import DropReason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (590.0, 590.0),
        (1290, 1290.0),
        ("590", 590.0),
        ("590.0", 590.0),
        ("$1,290.00", 1290.0),
        (" $ 12,345.5 ", 12345.5),
        ("USD 1,290", 1290.0),
        ("1.290,00", 1290.0),  # the decimal comma (phi3v.preparation.prices)
        ("1 290,50 €", 1290.5),
        (590.00000001, 590.0),
        (None, None),
        (math.nan, None),
        ("", None),
        ("N.A.", None),
    ],
)
def test_parse_price(value, expected):
    assert parse_price(value) == expected


@pytest.mark.parametrize("value", ["call us", "1,29,0", "$-5", 0, -10.0, math.inf, "12 99", "99¢"])
def test_parse_price_rejects_what_is_not_a_positive_amount(value):
    with pytest.raises(ValueError, match="price"):
        parse_price(value)


@pytest.mark.parametrize("value", [True, ["590"]])
def test_parse_price_rejects_other_types(value):
    with pytest.raises(TypeError, match="price"):
        parse_price(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(80712345, "80712345"), (80712345.0, "80712345"), (" 00123 ", "00123"), ("N.A.", None), (None, None)],
)
def test_parse_product_code(value, expected):
    assert parse_product_code(value) == expected


def source_row(index, **overrides):
    row = {
        "product_code": f"P{index}",
        "title": "Check  Scarf ",
        "category1_code": "WOMEN",
        "category2_code": "ACCESSORIES",
        "category3_code": "N.A.",
        "full_price": "$590.00",
        "image": " https://example.com/a.jpg ",
        "source_row": index,
    }
    return row | overrides


def test_clean_rows_parses_kept_rows_and_reports_the_rest():
    rows = [
        source_row(0),
        source_row(1, category2_code=None, category3_code=""),
        source_row(2, product_code=None),
        source_row(3, title="  "),
        source_row(4, full_price=None),
        source_row(5, full_price="free"),
        source_row(6, image="N.A."),
        source_row(7, image=None, full_price=None),  # one reason per row: the first that applies
    ]
    kept, dropped = clean_rows(rows)

    assert kept[0] == {
        "product_code": "P0",
        "title": "Check Scarf",
        "category1_code": "WOMEN",
        "category2_code": "ACCESSORIES",
        "category3_code": "N.A.",
        "full_price": 590.0,
        "image_url": "https://example.com/a.jpg",
        "source_row": 0,
    }
    assert (kept[1]["category2_code"], kept[1]["category3_code"]) == ("N.A.", "N.A.")
    assert [(row.source_row, row.reason) for row in dropped] == [
        (2, DropReason.MISSING_PRODUCT_CODE),
        (3, DropReason.MISSING_TITLE),
        (4, DropReason.MISSING_PRICE),
        (5, DropReason.BAD_PRICE),
        (6, DropReason.MISSING_IMAGE),
        (7, DropReason.MISSING_PRICE),
    ]
    assert "free" in dropped[3].detail
    assert dropped[4].image_url == "N.A."


def test_deduplicate_keeps_the_first_row_in_source_order_and_reports_the_others():
    rows = [
        {"product_code": "B", "source_row": 3, "image_url": "b2"},
        {"product_code": "A", "source_row": 0, "image_url": "a"},
        {"product_code": "B", "source_row": 1, "image_url": "b1"},
        {"product_code": "B", "source_row": 5, "image_url": "b3"},
    ]
    kept, dropped = deduplicate_by_product_code(rows)
    assert [row["source_row"] for row in kept] == [0, 1]
    assert [(row.source_row, row.reason, row.image_url) for row in dropped] == [
        (3, DropReason.DUPLICATE_PRODUCT_CODE, "b2"),
        (5, DropReason.DUPLICATE_PRODUCT_CODE, "b3"),
    ]
    assert "source row 1" in dropped[0].detail
