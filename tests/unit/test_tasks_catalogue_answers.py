"""The catalogue answer: shop-style prices, rendering from a row, and a parser derived from the answer template that
reads back what was rendered, for the default template and for custom ones; unreadable templates are refused."""

import math
import random

import pytest

from phi3v.tasks.catalogue import (
    DEFAULT_ANSWER_TEMPLATE,
    DEFAULT_QUESTION,
    AnswerTemplate,
    format_price,
    parse_price,
    to_conversation,
)


ROW = {"title": "Beige Check Scarf", "category3_code": "N.A.", "full_price": 590.0, "category2_code": "SCARVES"}
DEFAULT = AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (590.0, "590.00"),
        (1290, "1,290.00"),
        (590.00000001, "590.00"),
        (0.1 + 0.2, "0.30"),
        (1234567.891, "1,234,567.89"),
        (2990.0, "2,990.00"),
    ],
)
def test_format_price_is_shop_style(value, expected):
    assert format_price(value) == expected


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_format_price_rejects_impossible_prices(value):
    with pytest.raises(ValueError, match="price"):
        format_price(value)


@pytest.mark.parametrize("value", ["590", None, True])
def test_format_price_rejects_non_numbers(value):
    with pytest.raises(TypeError, match="price"):
        format_price(value)


def test_defaults_reproduce_the_original_prompt():
    assert DEFAULT_QUESTION == "What is shown in this image?"
    assert DEFAULT_ANSWER_TEMPLATE == "Product: {title}, Category: {category3_code}, Full Price: {full_price}"


def test_render_with_the_default_and_a_custom_template():
    assert DEFAULT.render(ROW) == "Product: Beige Check Scarf, Category: N.A., Full Price: 590.00"
    assert (
        AnswerTemplate("{category2_code} / {title}: ${full_price}").render(ROW)
        == "SCARVES / Beige Check Scarf: $590.00"
    )


def test_render_names_a_missing_field():
    with pytest.raises(KeyError, match="colour"):
        AnswerTemplate("{title} in {colour}").render(ROW)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{} costs {full_price}", "name the column"),
        ("{0} costs {full_price}", "name the column"),
        ("No placeholder at all", "no {column}"),
        ("{title}{category3_code}", "nothing between them"),
        ("{title} {category3_code}", "nothing between them"),
        ("{title}, {title}", "twice"),
    ],
)
def test_unreadable_templates_are_refused(template, message):
    with pytest.raises(ValueError, match=message):
        AnswerTemplate(template)


def test_to_conversation():
    image = object()
    assert to_conversation({**ROW, "image": image}) == {
        "images": [image],
        "messages": [
            {"role": "user", "content": "<|image_1|>What is shown in this image?"},
            {"role": "assistant", "content": "Product: Beige Check Scarf, Category: N.A., Full Price: 590.00"},
        ],
    }
    conversation = to_conversation({**ROW, "image": None}, "Price?", AnswerTemplate("{full_price}"))
    assert conversation == {
        "images": [],
        "messages": [{"role": "user", "content": "Price?"}, {"role": "assistant", "content": "590.00"}],
    }


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
def test_parse_the_default_template(text, title, category, price):
    assert DEFAULT.parse(text) == {"title": title, "category3_code": category, "full_price": price}


TEMPLATES = [
    DEFAULT_ANSWER_TEMPLATE,
    "{title} | {category3_code} | ${full_price}",
    "Item={title}; cat={category3_code}; USD {full_price}.",
    "Title: {title}\nCategory: {category3_code}\nPrice: {full_price} dollars",
    "It is a {category3_code} called {title} and costs {full_price}",
    "{full_price} - {title}",
    "Department {category2_code}. Product {title}",
]
ROWS = [
    {"title": t, "category3_code": c, "category2_code": d, "full_price": p}
    for t, c, d, p in [
        ("Check Cashmere Scarf", "SCARVES", "ACCESSORIES", 590.0),
        ("Vintage Check Cotton Trench Coat", "TRENCH COATS", "OUTERWEAR", 2890.5),
        ("Lip Velvet Crush 37 Rosewood", "N.A.", "BEAUTY", 34.0),
        ("Mini Lola Bag", "Shoulder Bags", "BAGS", 1234567.89),
        ("Écharpe à carreaux", "Écharpes", "ACCESSOIRES", 5.0),
    ]
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_any_readable_template_round_trips(template):
    answer_template = AnswerTemplate(template)
    assert answer_template.check_round_trip(ROWS) == len(ROWS)
    for row in ROWS:
        parsed = answer_template.parse(answer_template.render(row) + "<|end|>")
        assert parsed == {field: row[field] for field in answer_template.fields}


def test_a_template_whose_values_contain_its_separator_is_refused_naming_the_row():
    template = AnswerTemplate("{title}, {category3_code}, {full_price}")
    rows = [*ROWS[:2], {"title": "Check, Wool Scarf", "category3_code": "SCARVES", "full_price": 1.0}]
    with pytest.raises(ValueError, match=r"row 2 renders as 'Check, Wool Scarf, SCARVES, 1.00'"):
        template.check_round_trip(rows)


def test_custom_labels_are_found_in_any_order_and_case():
    template = AnswerTemplate("Colour: {colour}; Size: {size}; Cost: {full_price}")
    assert template.parse("size: XL; COLOUR: Navy Blue; cost: $1,290") == {
        "colour": "Navy Blue",
        "size": "XL",
        "full_price": 1290.0,
    }
    assert template.parse("Colour: Navy; Si") == {"colour": "Navy", "size": None, "full_price": None}


@pytest.mark.parametrize(
    ("text", "price"),
    [("590", 590.0), ("$1,290.00", 1290.0), ("0590", 590.0), ("12,345", 12345.0), ("1,2345", None), ("", None)]
    + [("1 290", None), ("1\u00a0290.00", None), ("590 (was 700)", 590.0), ("590 1234", 590.0), (None, None)],
)
def test_parse_price(text, price):
    assert parse_price(text) == price


@pytest.mark.parametrize("template", TEMPLATES)
def test_parse_never_raises_on_random_text(template):
    answer_template = AnswerTemplate(template)
    pieces = ["Product", "Category", "Full Price", "Price", "Item=", "cat=", "|", ":", ",", ".", " ", "\n", "<|end|>"]
    pieces += [
        "<|",
        "|>",
        "$",
        "USD",
        "0",
        "9",
        "1,290.00",
        "N.A.",
        "é",
        "围巾",
        "\x00",
        "\t",
        "-",
        "e5",
        "inf",
        "nan",
    ]
    rng = random.Random(0)
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        parsed = answer_template.parse(text)
        assert parsed.get("full_price") is None or parsed["full_price"] >= 0
        assert all(v is None or isinstance(v, float) or v.strip() == v != "" for v in parsed.values())
