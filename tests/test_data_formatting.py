import math

import pytest

from phi3v.data.formatting import (
    DEFAULT_ANSWER_TEMPLATE,
    DEFAULT_QUESTION,
    build_messages,
    format_price,
    render_answer,
)


ROW = {"title": "Beige Check Scarf", "category3_code": "N.A.", "full_price": 590.0, "category2_code": "SCARVES"}


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


def test_render_answer_with_the_default_and_a_custom_template():
    assert render_answer(ROW) == "Product: Beige Check Scarf, Category: N.A., Full Price: 590.00"
    assert render_answer(ROW, "{category2_code} / {title}: ${full_price}") == "SCARVES / Beige Check Scarf: $590.00"


def test_render_answer_names_a_missing_field():
    with pytest.raises(KeyError, match="colour"):
        render_answer(ROW, "{title} in {colour}")


def test_render_answer_rejects_positional_placeholders():
    with pytest.raises(ValueError, match="positional"):
        render_answer(ROW, "{} costs {full_price}")


def test_build_messages():
    assert build_messages(ROW) == [
        {"role": "user", "content": "<|image_1|>What is shown in this image?"},
        {"role": "assistant", "content": "Product: Beige Check Scarf, Category: N.A., Full Price: 590.00"},
    ]
    assert build_messages(ROW, question="Price?", answer_template="{full_price}") == [
        {"role": "user", "content": "<|image_1|>Price?"},
        {"role": "assistant", "content": "590.00"},
    ]
    assert build_messages(ROW, with_answer=False) == [
        {"role": "user", "content": "<|image_1|>What is shown in this image?"}
    ]
