"""Turning a catalogue row into the conversation the trainer sees.

The question and the answer template come from the recipe; the defaults reproduce the original Burberry recipe's
prompt, with prices written the way a shop writes them (`1,290.00`, not `1290.0`).

Example:

```python
>>> row = {"title": "Beige Check Scarf", "category3_code": "SCARVES", "full_price": 590.0}
>>> build_messages(row)
[{'role': 'user', 'content': '<|image_1|>What is shown in this image?'},
 {'role': 'assistant', 'content': 'Product: Beige Check Scarf, Category: SCARVES, Full Price: 590.00'}]
```
"""

import math
import string
from collections.abc import Mapping


IMAGE_PLACEHOLDER = "<|image_1|>"  # Phi-3-V's processor replaces it with the image's tokens
DEFAULT_QUESTION = "What is shown in this image?"
DEFAULT_ANSWER_TEMPLATE = "Product: {title}, Category: {category3_code}, Full Price: {full_price}"


def format_price(value: float) -> str:
    """Formats a price the way a shop does: two decimals and thousands separators.

    Args:
        value (`float`):
            The price, e.g. `590.0`, `1290` or `590.00000001`.

    Returns:
        `str`: e.g. `"590.00"`, `"1,290.00"`, `"590.00"`.

    Raises:
        `ValueError`: for a negative, infinite or NaN price.
        `TypeError`: for a value that is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"price must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"price must be a finite non-negative number, got {value!r}")
    return f"{value:,.2f}"


def template_fields(template: str) -> list[str]:
    """Names of the `{field}` placeholders in `template`, e.g. `["title", "category3_code", "full_price"]`."""
    fields = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise ValueError(
                f"Template {template!r} has a positional placeholder; name the row field, e.g. {{title}}."
            )
        fields.append(field)
    return fields


def render_answer(row: Mapping, template: str = DEFAULT_ANSWER_TEMPLATE) -> str:
    """Renders the answer for a row: `{full_price}` with `format_price`, every other `{field}` from the row as is.

    Args:
        row (`Mapping`):
            A catalogue row (dataset columns).
        template (`str`, *optional*, defaults to `DEFAULT_ANSWER_TEMPLATE`):
            Answer with `{field}` placeholders naming row columns.

    Raises:
        `KeyError`: naming the field when the template uses a column the row does not have.
    """
    values = {}
    for field in template_fields(template):
        if field not in row:
            raise KeyError(f"Answer template uses {{{field}}} but the row has no {field!r}; it has {sorted(row)}.")
        values[field] = format_price(row[field]) if field == "full_price" else row[field]
    return template.format(**values)


def build_messages(
    row: Mapping,
    question: str = DEFAULT_QUESTION,
    answer_template: str = DEFAULT_ANSWER_TEMPLATE,
    with_answer: bool = True,
) -> list[dict]:
    """Builds the chat messages for one row: the image placeholder and question, then the rendered answer.

    Args:
        row (`Mapping`):
            A catalogue row (dataset columns).
        question (`str`, *optional*, defaults to `DEFAULT_QUESTION`):
            The user's question, placed after `<|image_1|>`.
        answer_template (`str`, *optional*, defaults to `DEFAULT_ANSWER_TEMPLATE`):
            Template of the assistant's answer; see `render_answer`.
        with_answer (`bool`, *optional*, defaults to `True`):
            Whether to include the assistant turn (leave it out to build a generation prompt).

    Returns:
        `list[dict]`: `[{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]`, without the
        assistant turn when `with_answer=False`.
    """
    messages = [{"role": "user", "content": IMAGE_PLACEHOLDER + question}]
    if with_answer:
        messages.append({"role": "assistant", "content": render_answer(row, answer_template)})
    return messages
