import dataclasses
import random

import pytest

from phi3v.evaluation.parsing import ParsedAnswer, parse_answer, parse_price


@pytest.mark.parametrize(
    ("text", "title", "category", "price"),
    [
        # The target format, with and without the end token.
        (
            "Product: Check Cashmere Scarf, Category: Scarves, Full Price: 590.00",
            "Check Cashmere Scarf",
            "Scarves",
            590.0,
        ),
        (
            "Product: Check Cashmere Scarf, Category: Scarves, Full Price: 590.00<|end|>",
            "Check Cashmere Scarf",
            "Scarves",
            590.0,
        ),
        # Commas inside the title.
        (
            "Product: Check, Wool and Cashmere Scarf, Category: Scarves, Full Price: 590.00",
            "Check, Wool and Cashmere Scarf",
            "Scarves",
            590.0,
        ),
        ("Product: Trench Coat, Category: N.A., Full Price: 1,290.00", "Trench Coat", "N.A.", 1290.0),
        # Currency signs and codes, before or after, with and without thousands separators.
        ("Product: Bag, Category: Bags, Full Price: $1,290.00", "Bag", "Bags", 1290.0),
        ("Product: Bag, Category: Bags, Full Price: USD 1290", "Bag", "Bags", 1290.0),
        ("Product: Bag, Category: Bags, Full Price: €590", "Bag", "Bags", 590.0),
        ("Product: Bag, Category: Bags, Full Price: £ 12,345,678.5", "Bag", "Bags", 12345678.5),
        ("Product: Bag, Category: Bags, Full Price: 590.00 USD", "Bag", "Bags", 590.0),
        ("Product: Bag, Category: Bags, Full Price: US$0.99", "Bag", "Bags", 0.99),
        # European and malformed numbers give no price rather than a wrong one.
        ("Product: Bag, Category: Bags, Full Price: 1.290,00", "Bag", "Bags", None),
        ("Product: Bag, Category: Bags, Full Price: 1,29", "Bag", "Bags", None),
        ("Product: Bag, Category: Bags, Full Price: 1.2.3", "Bag", "Bags", None),
        ("Product: Bag, Category: Bags, Full Price: 1 290,00 €", "Bag", "Bags", None),
        ("Product: Bag, Category: Bags, Full Price: N/A", "Bag", "Bags", None),
        ("Product: Bag, Category: Bags, Full Price: " + "9" * 400, "Bag", "Bags", None),
        # Trailing tokens, whitespace, newlines and extra text after the price.
        ("Product: Bag, Category: Bags, Full Price: 590.00<|end|><|endoftext|>", "Bag", "Bags", 590.0),
        ("  Product:   Bag  ,  Category:Bags ,Full Price:590.00 \n\n", "Bag", "Bags", 590.0),
        ("Product: Bag, Category: Bags, Full Price: 590.00.", "Bag", "Bags", 590.0),
        ("Product: Bag, Category: Bags, Full Price: 590.00 (was 700.00)\nHope this helps!", "Bag", "Bags", 590.0),
        ("Sure! Here it is: Product: Bag, Category: Bags, Full Price: 590", "Bag", "Bags", 590.0),
        # Label case and spacing, fields in another order or on separate lines, plain "Price:".
        ("product: Bag, CATEGORY: Bags, full price: 590.00", "Bag", "Bags", 590.0),
        ("PRODUCT : Bag, Category : Bags, FullPrice : 590.00", "Bag", "Bags", 590.0),
        ("Full Price: 590.00, Category: Bags, Product: Check, Canvas Bag", "Check, Canvas Bag", "Bags", 590.0),
        ("Category: Bags\nProduct: Bag\nFull Price: 590.00\nThis bag is made of canvas.", "Bag", "Bags", 590.0),
        ("Product: Bag, Category: Bags, Price: 590.00", "Bag", "Bags", 590.0),
        # Repeated generation: the first occurrence of each field wins.
        (
            "Product: Bag, Category: Bags, Full Price: 590.00 Product: Bag, Category: Bags, Full Price: 12.00 Product",
            "Bag",
            "Bags",
            590.0,
        ),
        ("Product: Bag, Category: Bags, Full Price: 590.00<|end|>Product: Hat, Category: Hats", "Bag", "Bags", 590.0),
        # Truncated generation: missing fields, and a cut-off label dropped from the previous value.
        ("Product: Trench Coat, Category: Coa", "Trench Coat", "Coa", None),
        ("Product: Trench Coat, Category: Coats, Full Pri", "Trench Coat", "Coats", None),
        ("Product: Trench Coat, Category: Coats, F", "Trench Coat", "Coats", None),
        ("Product: Trench Coat, Category: Coats, Full Price:", "Trench Coat", "Coats", None),
        ("Product: Trench Coat, Cat", "Trench Coat", None, None),
        ("Product: Check, Wool", "Check, Wool", None, None),
        ("Product: Trench", "Trench", None, None),
        # Empty values.
        ("Product: , Category: Bags, Full Price: 590", None, "Bags", 590.0),
        ("Product: Bag, Category: ,, Full Price: 590", "Bag", None, 590.0),
        # Unicode.
        ("Product: Écharpe à carreaux, Category: Écharpes, Full Price: €590", "Écharpe à carreaux", "Écharpes", 590.0),
        ("Product: 格纹羊绒围巾, Category: 围巾, Full Price: ¥5,900.00", "格纹羊绒围巾", "围巾", 5900.0),
        # Nothing to find.
        ("", None, None, None),
        ("   \n<|end|>", None, None, None),
        ("I cannot tell the price of this item.", None, None, None),
        ("Check Cashmere Scarf, Scarves, 590.00", None, None, None),
        ("::::,,,,<|<|end|>|>", None, None, None),
    ],
)
def test_parse_answer(text, title, category, price):
    answer = parse_answer(text)
    assert (answer.title, answer.category, answer.price) == (title, category, price)
    assert answer.parsed == (None not in (title, category, price))


@pytest.mark.parametrize(
    ("title", "category", "price"),
    [
        ("Check Cashmere Scarf", "Scarves", 590.0),
        ("Check, Wool and Cashmere Scarf", "N.A.", 1290.0),
        ("Vintage Check Cotton Trench Coat", "Trench Coats", 2890.5),
        ("Mini Lola Bag", "Shoulder Bags", 1234567.89),
        ("Lip Velvet Crush – 37 Rosewood", "Lipstick", 34.0),
    ],
)
def test_parse_answer_reads_back_the_training_target(title, category, price):
    target = f"Product: {title}, Category: {category}, Full Price: {price:,.2f}<|end|>"
    assert parse_answer(target) == ParsedAnswer(title=title, category=category, price=price)


def test_parsed_is_derived_and_serialised():
    assert ParsedAnswer(title="Bag", category="Bags", price=0.0).parsed is True
    assert ParsedAnswer(title="Bag", category="Bags", price=None).parsed is False
    assert ParsedAnswer(title=None, category="Bags", price=1.0).parsed is False
    assert dataclasses.asdict(parse_answer("Product: Bag, Category: Bags, Full Price: 5")) == {
        "title": "Bag",
        "category": "Bags",
        "price": 5.0,
        "parsed": True,
    }


@pytest.mark.parametrize(
    ("text", "price"),
    [("590", 590.0), ("$1,290.00", 1290.0), ("0590", 590.0), ("12,345", 12345.0), ("1,2345", None), ("", None)]
    + [("1 290", None), ("1\u00a0290.00", None), ("590 (was 700)", 590.0), ("590 1234", 590.0)],
)
def test_parse_price(text, price):
    assert parse_price(text) == price


def test_parse_answer_never_raises_on_random_text():
    pieces = [
        "Product",
        "Category",
        "Full Price",
        "Price",
        ":",
        ",",
        ".",
        " ",
        "\n",
        "<|end|>",
        "<|",
        "|>",
        "$",
        "USD",
    ]
    pieces += ["0", "9", "1,290.00", "N.A.", "é", "围巾", "\x00", "\t", "-", "e5", "inf", "nan"]
    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        answer = parse_answer(text)
        assert answer.price is None or answer.price >= 0
        assert answer.title is None or answer.title.strip() == answer.title != ""
