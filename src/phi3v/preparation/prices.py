"""A catalogue's price cells as shops and spreadsheets write them, read into amounts or refused with the reason.

A cell is a number, or text: an amount with an optional currency before or after it (a symbol `$ € £ ¥ ₹ ₩ ₽ ₺ ₪`, a
dollar with a country prefix `US$ C$ HK$`, a three-capital code `USD EUR CHF`, or `kr`), and an optional `,-` or
`.-` for "no cents" (`590,-`). The amount's digits are read by these rules:

- spaces (also non-breaking), `'` and `’` group thousands: `1 234,50`, `1'234.50`;
- with both `.` and `,`, the last one is the decimal mark and the other groups thousands: `1.234,56`, `1,234.56`;
- one mark used several times groups thousands: `1,234,567`, `1.234.567`;
- one mark used once, then 1, 2 or 4 and more digits, is the decimal mark: `590,5`, `590,00`, `590.00`;
- one mark used once, then exactly 3 digits (`1,234`, `1.234`), is ambiguous (1234, or 1.234). It is read as thousands
  when the table's decimal mark is the other one, and refused otherwise: a price with three decimals is refused too.

Groups of thousands must be whole: a first group of 1 to 3 digits, then groups of 3. Anything else (`12 99`,
`1,29,0`, `-5`, `0`, `99¢`, `call us`) is refused with its reason.

The table's decimal mark (`decimal_mark`) is what its own unambiguous price cells show, when they agree; when none
shows it, it follows from a CSV file's delimiter, as spreadsheets save it: `;` where the comma is the decimal mark,
`,` where it is the point. Otherwise (tab or `|`, JSON, Parquet, a Hub dataset) an ambiguous cell is refused.
"""

import math
import re
from collections.abc import Iterable
from typing import NamedTuple


_CURRENCY = r"(?:[$€£¥₹₩₽₺₪]|[A-Z]{1,2}\$|[A-Z]{3}|kr\.?)"
_CELL = re.compile(
    rf"(?:{_CURRENCY}\s*)?(?P<number>\d(?:[\d.,'’ \u00a0\u202f]*\d)?)(?P<no_cents>[.,][-–])?(?:\s*{_CURRENCY})?"
)
_GROUPING = set("'’ \u00a0\u202f")
# The decimal mark a CSV delimiter goes with, when no cell shows it: Excel saves `;` in the locales whose decimal
# mark is the comma, because the comma is taken.
_DECIMAL_MARK_OF_DELIMITER = {";": ",", ",": "."}
_OTHER_MARK = {".": ",", ",": "."}


class AmbiguousPrice(ValueError):
    """A price cell whose decimal mark the table does not tell (`1,234`), or would give three decimals."""


def parse_price(value, decimal_mark: str | None = ".") -> float:
    """Reads one price cell by the module's rules, rounded to cents.

    Args:
        value (`float`, `int` or `str`): the cell; a missing value is the caller's to handle.
        decimal_mark (`str`, *optional*, defaults to `"."`): the table's decimal mark (`"."` or `","`,
            `decimal_mark`), which reads an ambiguous cell such as `1,234`; `None` when it is not known.

    Raises:
        `ValueError`: naming the value and why it is not a positive amount; `AmbiguousPrice` for an ambiguous one.
        `TypeError`: for a value that is neither a number nor a string (e.g. `True` or a list).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"price {value!r} has unsupported type {type(value).__name__}")
    price = float(value) if not isinstance(value, str) else _read_amount(value, decimal_mark)
    if not math.isfinite(price) or price <= 0:
        raise ValueError(f"price {value!r} is not a positive amount")
    # Cents are the unit a shop prices in; rounding here removes float noise such as 590.00000001 at the source.
    return round(price, 2)


def decimal_mark(values: Iterable, delimiter: str | None = None) -> str | None:
    """The decimal mark of a table's price column (the module's rule): `"."`, `","`, or `None` when it cannot be told
    (no cell shows it and the delimiter does not say, or the cells show both).

    Args:
        values (`Iterable`): the column's cells, as read.
        delimiter (`str`, *optional*): the CSV file's delimiter; `None` for other sources.
    """
    shown = {mark for value in values if isinstance(value, str) and (mark := getattr(_split(value), "shown", None))}
    if len(shown) == 1:
        return shown.pop()
    return None if shown else _DECIMAL_MARK_OF_DELIMITER.get(delimiter)


class _Amount(NamedTuple):
    """What a cell's amount shows: its digits, its decimal and thousands marks where it shows them, the mark it uses
    once before exactly three digits (`ambiguous`), and the decimal mark it shows for the table (`shown`)."""

    number: str
    decimal: str | None
    thousands: str | None
    ambiguous: str | None
    shown: str | None


def _split(text: str) -> _Amount | None:
    """The amount of a cell by the module's rules, or `None` for a cell that is not an amount."""
    match = _CELL.fullmatch(text.strip())
    if match is None:
        return None
    number = match["number"]
    grouping = set(number) & _GROUPING
    marks = [mark for mark in ".," if mark in number]
    if len(grouping) > 1 or (len(marks) == 2 and grouping):
        return None
    if match["no_cents"]:  # `1.234,-`: the dash stands for the cents, after the decimal mark
        decimal = match["no_cents"][0]
        if decimal in number:
            return None
        return _Amount(number, None, marks[0] if marks else (grouping or {None}).pop(), None, decimal)
    if len(marks) == 2:
        decimal = max(marks, key=number.rindex)
        return _Amount(number, decimal, _OTHER_MARK[decimal], None, decimal)
    if not marks:
        return _Amount(number, None, (grouping or {None}).pop(), None, None)
    mark = marks[0]
    if grouping:
        return _Amount(number, mark, grouping.pop(), None, mark)
    if number.count(mark) > 1:
        return _Amount(number, None, mark, None, _OTHER_MARK[mark])
    if len(number.rsplit(mark, 1)[1]) == 3:
        return _Amount(number, None, None, mark, None)
    return _Amount(number, mark, None, None, mark)


def _read_amount(text: str, table_mark: str | None) -> float:
    split = _split(text)
    if split is None:
        raise ValueError(f"price {text!r} is not an amount like 590.00, 1,290.00, 1.290,00 or 1 290,00 €")
    number, decimal, thousands, mark, _ = split
    if mark:
        if table_mark is None:
            raise AmbiguousPrice(
                f"price {text!r} is ambiguous: {number} may mean {number.replace(mark, '')} or "
                f"{number.replace(mark, '.')}, and neither the table's other prices nor its delimiter show its decimal mark; write "
                "it with cents (1,234.00 or 1.234,00)"
            )
        if table_mark == mark:
            raise AmbiguousPrice(
                f"price {text!r} would have three decimals with the table's decimal mark {mark!r} (from its other "
                "prices, or its delimiter); write it with cents (1,234.00 or 1.234,00)"
            )
        thousands = mark
    units, _, cents = number.rpartition(decimal) if decimal else (number, "", "")
    groups = units.split(thousands) if thousands else [units]
    if not (1 <= len(groups[0]) <= 3 or len(groups) == 1) or any(len(group) != 3 for group in groups[1:]):
        raise ValueError(f"price {text!r} groups its thousands wrongly (groups of 3 digits after the first)")
    if not all(group.isdigit() for group in groups) or (decimal and not cents.isdigit()):
        raise ValueError(f"price {text!r} mixes its separators")
    return float("".join(groups) + ("." + cents if decimal else ""))
