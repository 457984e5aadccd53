"""The catalogue task, in one place: from a product photo, answer `Product: {title}, Category: {category3_code}, Full
Price: {full_price}` (or the recipe's own `answer_template`). Its prompt and answer rendering and parsing
(`answers`), its metrics and image-free baselines (`metrics`) and its DPO hard negatives (`negatives`)."""

from .answers import (
    DEFAULT_ANSWER_TEMPLATE,
    DEFAULT_QUESTION,
    PRICE_FIELD,
    AnswerTemplate,
    format_price,
    parse_price,
    prompt_messages,
    to_conversation,
)


__all__ = [
    "DEFAULT_ANSWER_TEMPLATE",
    "DEFAULT_QUESTION",
    "PRICE_FIELD",
    "AnswerTemplate",
    "format_price",
    "parse_price",
    "prompt_messages",
    "to_conversation",
]
