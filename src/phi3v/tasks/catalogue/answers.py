"""The catalogue answer: rendered from a row by the recipe's `answer_template`, and read back by a parser derived from
the same template, so a custom template trains, evaluates and builds DPO pairs alike.

A template is text with `{column}` placeholders, e.g. the default `Product: {title}, Category: {category3_code}, Full
Price: {full_price}`. `{full_price}` is written the way a shop writes prices (`1,290.00`); every other column as it is.

Parsing, for a template whose every field has a label (the words before its placeholder, such as `Category:`):

- Labels are matched case-insensitively with any spacing, in any order; the first occurrence of a label wins
  (repeated generation). A multi-word label may be shortened to its last word (`Price:` for `Full Price:`) when
  that word is unambiguous. Special tokens such as `<|end|>` end a line.
- A value runs from its label to the next label or the end of the line; it never spans lines. Surrounding
  whitespace and trailing `,`/`;` are stripped; `.` is kept (`N.A.` is a real category). A value that reaches the end
  of the line ending in `, <start of a label>` was cut off, and that partial label is dropped. Empty means missing.
- The price is the first US-format number of its value (`1,290.00`, `$590`, `USD 1290`); `1.290,00`, `1,29` or
  `1 290` are ambiguous and give no price rather than a wrong one.

A template without labels (e.g. `{title} | {category3_code} | {full_price}`) is read by position, line by line.
Either way a template must round-trip: `AnswerTemplate.check_round_trip` renders rows and parses them back, and a
template that cannot be read (two placeholders with nothing between them, or values that contain its separators) is
refused at start-up with the row that fails.

Example:

```python
>>> template = AnswerTemplate("Product: {title}, Category: {category3_code}, Full Price: {full_price}")
>>> template.render({"title": "Check Scarf", "category3_code": "SCARVES", "full_price": 1290.0})
'Product: Check Scarf, Category: SCARVES, Full Price: 1,290.00'
>>> template.parse("Product: Check Scarf, Category: SCARVES, Full Price: 1,290.00")
{'title': 'Check Scarf', 'category3_code': 'SCARVES', 'full_price': 1290.0}
```
"""

import math
import re
import string
from collections.abc import Iterable, Mapping

from phi3v.data.conversation import SourcedRow
from phi3v.errors import BadRow, DataError, UsageError
from phi3v.modeling.chat_format import image_tag


DEFAULT_QUESTION = "What is shown in this image?"
DEFAULT_ANSWER_TEMPLATE = "Product: {title}, Category: {category3_code}, Full Price: {full_price}"
PRICE_FIELD = "full_price"

_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\n]*\|>")
_SEPARATORS = " \t\n,;|-"
# The first run of digits with separators; groups of three after a space are taken in, so "1 290" is refused whole.
_NUMBER_TOKEN = re.compile(r"[0-9][0-9.,]*(?:[ \u00a0\u202f][0-9]{3}(?![0-9]))*")
_US_NUMBER = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_TRUNCATED_TAIL = re.compile(r"[,;|][ \t]*(?P<word>[^\W\d_][^\W\d_ \t]*(?:[ \t]+[^\W\d_]*)*)$")


def format_price(value: float) -> str:
    """A price as a shop writes it: two decimals and thousands separators (`590.00`, `1,290.00`).

    Raises:
        `ValueError`: for a negative, infinite or NaN price. `TypeError`: for a value that is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"price must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"price must be a finite non-negative number, got {value!r}")
    return f"{value:,.2f}"


def parse_price(text: str | None) -> float | None:
    """The first US-format number in `text`, currency signs and codes around it ignored; `None` when there is none,
    it is ambiguous (`1.290,00`) or not finite."""
    match = _NUMBER_TOKEN.search(text or "")
    if match is None:
        return None
    token = match.group().rstrip(".,")  # sentence punctuation after the number is not part of it
    if not _US_NUMBER.fullmatch(token):
        return None
    price = float(token.replace(",", ""))
    return price if math.isfinite(price) else None


def _literal_pattern(literal: str) -> str:
    """A regex for template text: case-insensitive words, any spacing (none included) where the template has some
    or before a colon."""
    words = [re.escape(word) for word in re.split(r"\s+|(?=:)", literal.strip()) if word]
    return r"\s*".join(words)


class AnswerTemplate:
    """Renders and parses answers of one `answer_template`.

    Args:
        template (`str`): text with `{column}` placeholders naming dataset columns.

    Raises:
        `ValueError`: for a template with no placeholder, a positional or repeated one, or two placeholders with
            nothing between them (their values could not be told apart).
    """

    def __init__(self, template: str):
        self.template = template
        pieces = list(string.Formatter().parse(template))
        self.fields = [field for _, field, _, _ in pieces if field is not None]
        self.literals = [literal for literal, _, _, _ in pieces]  # the text before each field, then the tail
        if len(self.literals) == len(self.fields):
            self.literals.append("")
        if not self.fields:
            raise UsageError(f"answer_template {template!r} has no {{column}} placeholder.")
        for field in self.fields:
            if field == "" or field.isdigit() or not field.isidentifier():
                raise UsageError(f"answer_template {template!r}: name the column in each placeholder, e.g. {{title}}.")
        if len(set(self.fields)) != len(self.fields):
            raise UsageError(f"answer_template {template!r} uses a placeholder twice.")
        if any(not self.literals[i].strip(" \t") for i in range(1, len(self.fields))):
            raise ValueError(
                f"answer_template {template!r} has two placeholders with nothing between them; their values could "
                "not be told apart when parsing. Put a separator between them, e.g. `{title}, {category3_code}`."
            )
        self.labels = [literal.strip(_SEPARATORS) for literal in self.literals[: len(self.fields)]]
        self.labelled = all(re.search(r"[^\W\d_]", label) for label in self.labels)
        if self.labelled:
            self._label_regex = self._build_label_regex()
        else:
            groups = [
                _literal_pattern(literal) + rf"(?P<f{i}>[^\n]*?)"
                for i, literal in enumerate(self.literals[: len(self.fields)])
            ]
            self._positional_regex = re.compile(
                "".join(groups) + _literal_pattern(self.literals[-1]) + r"[ \t.]*(?:\n|$)", re.IGNORECASE
            )

    def _build_label_regex(self) -> re.Pattern:
        last_words = [label.split()[-1].lower() for label in self.labels]
        alternatives = []
        for index, label in enumerate(self.labels):
            spellings = [label]
            # "Price:" for "Full Price:": only a colon-ended label's last word, long enough not to occur by chance.
            alias = label.split()[-1]
            if label.endswith(":") and len(alias) > 3 and alias != label and last_words.count(last_words[index]) == 1:
                spellings.append(alias)
            patterns = [
                _literal_pattern(spelling) + (r"(?!\w)" if spelling[-1].isalnum() else "") for spelling in spellings
            ]
            alternatives.append(f"(?P<f{index}>" + "|".join(patterns) + ")")
        return re.compile("|".join(alternatives), re.IGNORECASE)

    def check_row(self, row: Mapping) -> None:
        """Refuses a row whose answer would be wrong: a column the template names that is missing, `None`, blank, not
        text or a number, or (`full_price`) not a finite non-negative number.

        Raises:
            `BadRow`: naming the column.
        """
        for field in self.fields:
            if field not in row:
                raise BadRow(
                    field, f"answer_template uses {{{field}}} but the row has no {field!r}; it has {sorted(row)}"
                )
            value = row[field]
            if value is None:
                raise BadRow(field, "the value is missing (None)")
            if field == PRICE_FIELD:
                try:
                    format_price(value)
                except (TypeError, ValueError) as error:
                    raise BadRow(field, str(error)) from None
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                raise BadRow(field, f"must be text or a number, got {type(value).__name__} {str(value)[:60]!r}")
            elif not str(value).strip():
                raise BadRow(field, "the value is empty")

    def render(self, row: Mapping) -> str:
        """The answer for `row`: `{full_price}` with `format_price`, every other column as it is.

        Raises:
            `KeyError`: naming the column when the row lacks one the template uses.
        """
        values = {}
        for field in self.fields:
            if field not in row:
                raise KeyError(f"answer_template uses {{{field}}} but the row has no {field!r}; it has {sorted(row)}.")
            values[field] = format_price(row[field]) if field == PRICE_FIELD else row[field]
        return self.template.format(**values)

    def parse(self, text: str) -> dict:
        """The fields read from a generated answer (never raises): column -> text, the price as a float, `None` for
        what could not be read."""
        text = _SPECIAL_TOKEN.sub("\n", text)
        raw = self._parse_labelled(text) if self.labelled else self._parse_positional(text)
        values = {}
        for field in self.fields:
            value = raw.get(field)
            if value is not None:
                value = value.strip().rstrip(",;").strip() or None
            values[field] = parse_price(value) if field == PRICE_FIELD and value is not None else value
        return values

    def _parse_labelled(self, text: str) -> dict:
        matches = list(self._label_regex.finditer(text))
        values = {}
        for index, match in enumerate(matches):
            field = self.fields[int(match.lastgroup[1:])]
            if field in values:
                continue
            line_end = text.find("\n", match.end())
            line_end = len(text) if line_end == -1 else line_end
            value_end = min(line_end, matches[index + 1].start() if index + 1 < len(matches) else len(text))
            value = text[match.end() : value_end]
            if value_end == line_end:
                value = self._drop_truncated_label(value)
            values[field] = value
        return values

    def _drop_truncated_label(self, value: str) -> str:
        tail = _TRUNCATED_TAIL.search(value.rstrip())
        if tail is None:
            return value
        word = " ".join(tail.group("word").lower().split())
        spellings = {" ".join(label.lower().rstrip(":").split()) for label in self.labels}
        if any(spelling.startswith(word) for spelling in spellings):
            return value[: tail.start()]
        return value

    def _parse_positional(self, text: str) -> dict:
        match = self._positional_regex.search(text)
        if match is None:
            return {}
        return {field: match.group(f"f{index}") for index, field in enumerate(self.fields)}

    def check_round_trip(self, rows: Iterable[Mapping]) -> int:
        """Renders every row and parses it back; returns how many were checked.

        Raises:
            `ValueError`: naming the first row whose fields do not come back, and what came back instead.
        """
        count = 0
        for count, row in enumerate(rows, start=1):
            parsed = self.parse(self.render(row))
            for field in self.fields:
                expected = row[field]
                got = parsed[field]
                same = (
                    got is not None and abs(got - float(expected)) < 0.005
                    if field == PRICE_FIELD
                    else got is not None and got == str(expected).strip()
                )
                if not same:
                    raise DataError(
                        f"answer_template {self.template!r} cannot be read back: row {count - 1} renders as "
                        f"{self.render(row)!r}, and {field!r} parses as {got!r} instead of {expected!r}. Use "
                        "labels before each field (e.g. `Product: {title}, Category: {category3_code}`) or "
                        "separators that never occur in the values."
                    )
        return count


def prompt_messages(question: str = DEFAULT_QUESTION, has_image: bool = True) -> list[dict]:
    """The user turn that asks about a product photo: `<|image_1|>` then the question (no newline, as trained)."""
    return [{"role": "user", "content": (image_tag(1) if has_image else "") + question}]


def to_conversation(row: Mapping, question: str = DEFAULT_QUESTION, template: AnswerTemplate | None = None) -> dict:
    """A catalogue row as a TRL conversational row: the photo and the question, then the rendered answer.

    Args:
        row (`Mapping`): a catalogue row (`image` plus the columns the template names).
        question (`str`, *optional*, defaults to `"What is shown in this image?"`): asked after the image tag.
        template ([`AnswerTemplate`], *optional*): the answer's template; defaults to `DEFAULT_ANSWER_TEMPLATE`.
    """
    template = template or AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)
    template.check_row(row)
    has_image = row.get("image") is not None
    answer_field = template.fields[0] if len(template.fields) == 1 else "answer_template"
    messages = [*prompt_messages(question, has_image), {"role": "assistant", "content": template.render(row)}]
    fields = [("question", "question"), (answer_field, answer_field)]
    return SourcedRow([row["image"]] if has_image else [], messages, fields, ["image"] if has_image else [])
