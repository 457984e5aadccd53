"""Parse a generated answer `Product: {title}, Category: {category}, Full Price: {price}` back into its fields.

Titles may contain commas (`Product: Check, Wool and Cashmere Scarf, Category: ...`), so the text is split on the field
labels, never on commas. The rules, in order:

- Special tokens such as `<|end|>` or `<|endoftext|>` end a line: whatever follows them is a new line.
- Labels are `Product:`, `Category:` and `Full Price:` (or plain `Price:`), matched case-insensitively with any spacing
  before the colon. They may come in any order. When a label appears more than once (repeated generation) the first
  occurrence wins.
- A value runs from its label to the next label or the end of the line, whichever comes first; a field never spans
  lines. Surrounding whitespace and trailing `,`/`;` are stripped; `.` is kept because `N.A.` is a real category.
- A value that reaches the end of the line without a following label was cut off if it ends in `, <start of a label>`
  (`Category: Coats, Full Pri`); that partial label is dropped.
- An empty value counts as missing.
- The price is the first number in its value. Currency signs and codes around it (`$`, `€`, `£`, `USD 1290`,
  `590.00 EUR`) are ignored. Numbers are read in the US format that the training targets use: `,` separates thousands
  and `.` is the decimal point (`1,290.00`, `1290`, `1290.5`). Anything else, e.g. the European `1.290,00`, `1,29` or
  `1 290`, is ambiguous and gives no price rather than a silently wrong one. A minus sign is not part of a price.
"""

import math
import re
from dataclasses import dataclass, field


_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\n]*\|>")
_LABEL = re.compile(r"\b(?P<name>product|category|(?:full[ \t]*)?price)[ \t]*:", re.IGNORECASE)
# The first run of digits with separators, e.g. "1,290.00" in "USD 1,290.00 (incl. tax)". Groups of three digits after
# a space are taken in too, so that "1 290" is rejected as a whole instead of being read as 1.
_NUMBER_TOKEN = re.compile(r"[0-9][0-9.,]*(?:[ \u00a0\u202f][0-9]{3}(?![0-9]))*")
_US_NUMBER = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_TRUNCATED_TAIL = re.compile(r",[ \t]*(?P<word>[A-Za-z][A-Za-z \t]*)$")
_LABEL_SPELLINGS = ("product", "category", "full price", "price")


@dataclass(frozen=True)
class ParsedAnswer:
    """The fields read from one generated answer.

    Args:
        title (`str`, *optional*): The product title, `None` when missing.
        category (`str`, *optional*): The category3 value (possibly the literal `N.A.`), `None` when missing.
        price (`float`, *optional*): The full price as a finite number, `None` when missing or unreadable.

    Attributes:
        parsed (`bool`): Whether all three fields are present, i.e. the answer followed the target format.
    """

    title: str | None
    category: str | None
    price: float | None
    parsed: bool = field(init=False)

    def __post_init__(self):
        # Derived, yet stored as a field so that `dataclasses.asdict` (and hence the predictions JSONL) carries it.
        object.__setattr__(self, "parsed", None not in (self.title, self.category, self.price))


def parse_answer(text: str) -> ParsedAnswer:
    """Read title, category and price from a generated answer. Never raises; unreadable fields are `None`.

    Args:
        text (`str`): The decoded generation, with or without special tokens.

    Returns:
        `ParsedAnswer`: The fields found; see the module docstring for the rules.
    """
    text = _SPECIAL_TOKEN.sub("\n", text)
    labels = list(_LABEL.finditer(text))
    values: dict[str, str] = {}
    for index, label in enumerate(labels):
        field_name = _field_name(label.group("name"))
        if field_name in values:
            continue
        line_end = text.find("\n", label.end())
        line_end = len(text) if line_end == -1 else line_end
        next_label_start = labels[index + 1].start() if index + 1 < len(labels) else len(text)
        value_end = min(line_end, next_label_start)
        value = text[label.end() : value_end]
        if value_end == line_end:
            value = _drop_truncated_label(value)
        values[field_name] = value
    return ParsedAnswer(
        title=_clean_text(values.get("title")),
        category=_clean_text(values.get("category")),
        price=parse_price(values.get("price", "")),
    )


def parse_price(text: str) -> float | None:
    """Read the first US-format number in `text`, ignoring currency signs and codes around it.

    Args:
        text (`str`): The price value, e.g. `"$1,290.00"`, `"USD 1290"` or `"590.00 (was 700)"`.

    Returns:
        `float` or `None`: The price, or `None` when there is no number, it is not in US format, or it is not finite.
    """
    match = _NUMBER_TOKEN.search(text)
    if match is None:
        return None
    # Sentence punctuation after the number ("590.00." or "590.00, Product: ...") is not part of it.
    token = match.group().rstrip(".,")
    if not _US_NUMBER.fullmatch(token):
        return None
    price = float(token.replace(",", ""))
    return price if math.isfinite(price) else None


def _field_name(label: str) -> str:
    label = label.lower()
    if label == "product":
        return "title"
    if label == "category":
        return "category"
    return "price"


def _drop_truncated_label(value: str) -> str:
    tail = _TRUNCATED_TAIL.search(value)
    if tail is None:
        return value
    word = " ".join(tail.group("word").lower().split())
    if any(spelling.startswith(word) for spelling in _LABEL_SPELLINGS):
        return value[: tail.start()]
    return value


def _clean_text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().rstrip(",;").strip()
    return value or None
