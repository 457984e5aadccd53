"""Local CSV tables as people have them: saved by Excel in any locale, exported by a shop system, written by a script.

`open_csv` reads a file's bytes once, decides how to read it and checks every line, so that `datasets`' CSV reader
(pandas) then reads exactly the rows checked here; what it cannot read is a `DataError` naming the file, the line and
what to pass, never a bare `UnicodeDecodeError` or a table read wrong.

- **Encoding** (`--encoding` overrides): a byte-order mark says UTF-8, UTF-16 or UTF-32; a file without one whose
  bytes are a quarter NULs or more is UTF-16 (little- or big-endian, from where they fall), one with a stray NUL is
  not text; else strict UTF-8; else cp1252, Windows' Western European code page, which reads Latin-1 (ISO-8859-1)
  files the same for every printable character and adds `€`, `Œ`, curly quotes. A file that mixes valid UTF-8 characters with bytes that are not, or whose cp1252 reading has runs of
  three accented letters or symbols (Cyrillic or Greek code pages, Shift-JIS...), is refused: pass its encoding.
- **Delimiter** (`--delimiter` overrides): Excel's `sep=;` first line if there is one; else the one of `,` `;` tab `|`
  that splits the header into the most columns and the first 50 records into as many fields as the header has. A
  frequency count (`csv.Sniffer`) is not used: it takes `,` for a `;` table with decimal commas, which has as many
  commas on every line. Two delimiters that fit equally well are refused, as is any record (to the end of the file)
  whose number of fields is not the header's.
"""

import codecs
import csv
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from phi3v.errors import DataError, UsageError


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SAMPLE_RECORDS = 50  # records the delimiter is chosen on; every record is checked with it afterwards

ENCODING_HELP = (
    "Encoding of a local .csv table, e.g. cp1252 or utf-16 (default: detected: a byte-order mark, else UTF-8, else "
    "cp1252, which reads Latin-1 too)."
)
DELIMITER_HELP = "Delimiter of a local .csv table, e.g. ';' or '\\t' (default: detected among , ; tab |)."

_BOMS = (  # UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Encodings a user may name for a file that starts with the byte-order mark of the same family: the mark is read as
# one, not as a character stuck to the first column's name.
_WITH_BOM = {"utf-8": "utf-8-sig"} | dict.fromkeys(["utf-16-le", "utf-16-be"], "utf-16")
_WITH_BOM |= dict.fromkeys(["utf-32-le", "utf-32-be"], "utf-32")
_UTF8_CHARACTER = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
# Western European text never has three non-ASCII characters in a row; another code page read as cp1252 always does.
_FOREIGN_RUN = re.compile(r"[^\x00-\x7f\s\u00a0]{3,}")
_SEP_LINE = re.compile(r'"?sep=([^\r\n])"?(?:\r\n|\n|\r)')  # Excel's first line naming the delimiter


@dataclass(frozen=True)
class CsvTable:
    """How a local CSV file is read, and what `open_csv` found in it.

    Args:
        path (`Path`): the file.
        encoding (`str`): the Python codec its bytes are read with.
        delimiter (`str`): the one character between fields.
        columns (`list[str]`): the header's names as pandas gives them (an empty name becomes `Unnamed: <index>`).
        num_rows (`int`): records after the header, blank lines not counted.
        skip_lines (`int`): lines before the header (1 for Excel's `sep=` line, else 0).
    """

    path: Path
    encoding: str
    delimiter: str
    columns: list[str]
    num_rows: int
    skip_lines: int = 0

    def read_options(self) -> dict:
        """The options of `datasets`' CSV builder (pandas' `read_csv`) that read the file as it was checked."""
        return {"encoding": self.encoding, "sep": self.delimiter, "skiprows": self.skip_lines}

    def describe(self) -> dict:
        return {"encoding": self.encoding, "delimiter": self.delimiter}


def check_encoding(name: str | None) -> str | None:
    """The codec's canonical name (`windows-1252` -> `cp1252`), or `None` when none is given.

    Raises:
        `UsageError`: for a name Python's codecs do not know, or a codec that is not a text encoding (`base64`).
    """
    if name is None:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise UsageError(
            f"--encoding {name!r} is not a text encoding Python knows; e.g. utf-8, cp1252, latin-1, utf-16."
        )
    return info.name


def check_delimiter(text: str | None) -> str | None:
    """The delimiter character (`\\t` and `tab` give a tab), or `None` when none is given.

    Raises:
        `UsageError`: for anything but one character, or a quote or line break (which cannot separate fields).
    """
    if text is None:
        return None
    delimiter = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise UsageError(
            f"--delimiter must be one character other than a quote or line break, e.g. ';'; got {text!r}."
        )
    return delimiter


def open_csv(path: str | Path, encoding: str | None = None, delimiter: str | None = None) -> CsvTable:
    """Decides how to read a local CSV file (see the module's rules) and checks every record of it.

    Args:
        path (`str` or `Path`): the file.
        encoding (`str`, *optional*): its encoding, instead of detecting it.
        delimiter (`str`, *optional*): its delimiter, instead of detecting it.

    Raises:
        `DataError`: naming the file and line of a byte the encoding cannot read, a header that names a column twice,
            or a record with another number of fields than the header; or when no encoding or delimiter can be told.
    """
    path = Path(path)
    text, encoding = _decode(path, path.read_bytes(), check_encoding(encoding))
    delimiter, skip_lines = check_delimiter(delimiter), 0
    if match := _SEP_LINE.match(text):
        delimiter, skip_lines = delimiter or match.group(1), 1
        text = text[match.end() :]
    delimiter = delimiter or _detect_delimiter(path, text)
    where = f"{path} ({encoding}, {DELIMITERS.get(delimiter, repr(delimiter))}-delimited)"
    header, header_line, num_rows, start = None, 0, 0, skip_lines + 1  # `start`: the line the next record starts on
    # Strict: a value after a closing quote, or a quote never closed, is an error here as it is one for pandas.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for fields in reader:
            if fields and header is None:
                header, header_line = fields, start
            elif fields:
                num_rows += 1
                if len(fields) != len(header):
                    raise DataError(
                        f"{where} line {start} has {len(fields)} fields where the header (line {header_line}) has "
                        f"{len(header)}. Quote values that contain {delimiter!r}, or pass --delimiter (`,` `;` "
                        "`\\t` `|`) if the table uses another."
                    )
            start = reader.line_num + skip_lines + 1
    except csv.Error as error:
        raise DataError(
            f"{where} line {start} cannot be read: {error}. A quoted value ends with its quote, right before the "
            'delimiter or the end of the line; a quote inside it is doubled ("").'
        ) from None
    if header is None:
        raise DataError(f"{path} is empty: a CSV table needs a header line naming its columns.")
    return CsvTable(path, encoding, delimiter, _column_names(where, header), num_rows, skip_lines)


def _decode(path: Path, data: bytes, encoding: str | None) -> tuple[str, str]:
    """The file's text and the encoding it was read with."""
    marked = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    if encoding is not None:
        encoding = _WITH_BOM.get(encoding, encoding) if marked == _WITH_BOM.get(encoding) else encoding
        return _strict(
            path, data, encoding, "; pass the file's encoding with --encoding, or leave it out to detect"
        ), encoding
    if marked is not None:
        return _strict(path, data, marked, ", though it starts with its byte-order mark"), marked
    if b"\x00" in data:  # text tables hold no NUL byte, UTF-16 has one in every ASCII character
        sample = data[:4096]
        if sample.count(0) < len(sample) // 4:  # a stray NUL, not UTF-16's one in every other byte
            raise DataError(f"{path} line {_line_at(data, data.index(0))} has a NUL byte: it is not a text table.")
        encoding = "utf-16-le" if sample[1::2].count(0) > sample[::2].count(0) else "utf-16-be"
        return _strict(path, data, encoding, " (it has NUL bytes and no byte-order mark); pass --encoding"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        if utf8 := _UTF8_CHARACTER.search(data):
            raise DataError(
                f"{path} mixes encodings: line {_line_at(data, utf8.start())} has UTF-8 characters, line "
                f"{_line_at(data, error.start)} has byte {data[error.start]:#04x}, which is not UTF-8. Save it in one "
                "encoding, or pass --encoding cp1252 to read every byte as cp1252 (its UTF-8 characters then read "
                "wrong)."
            ) from None
    text = _strict(path, data, "cp1252", " or UTF-8; pass the file's encoding with --encoding (e.g. latin-1)")
    if run := _FOREIGN_RUN.search(text):
        raise DataError(
            f"{path} is not UTF-8, and read as cp1252 (Western European) line {text.count(chr(10), 0, run.start()) + 1} "
            f"reads {run.group()!r}: pass the file's encoding with --encoding (e.g. cp1251, cp1250, shift_jis), or "
            "--encoding cp1252 if that is right."
        )
    return text, "cp1252"


def _strict(path: Path, data: bytes, encoding: str, way_out: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} line {_line_at(data, error.start, encoding)}: byte {data[error.start]:#04x} is not valid "
            f"{encoding}{way_out}."
        ) from None


def _line_at(data: bytes, offset: int, encoding: str = "utf-8") -> int:
    return data[:offset].decode(encoding, errors="replace").count("\n") + 1


def _detect_delimiter(path: Path, text: str) -> str:
    """The delimiter that fits the header and the first records best (the module's rule); `,` for one column."""
    fits = {}
    for delimiter in DELIMITERS:
        records = [fields for fields in _records(text, delimiter) if fields]
        if records and len(records[0]) > 1:
            fits[delimiter] = (sum(len(fields) == len(records[0]) for fields in records[1:]), len(records[0]))
    if not fits:
        return ","
    ranked = sorted(fits, key=fits.get, reverse=True)
    if len(ranked) > 1 and fits[ranked[0]] == fits[ranked[1]]:
        first, second = (DELIMITERS[delimiter] for delimiter in ranked[:2])
        raise DataError(
            f"{path}: its first lines split into {fits[ranked[0]][1]} columns by {first} and by {second} alike; pass "
            f"--delimiter {ranked[0]!r} or --delimiter {ranked[1]!r}."
        )
    return ranked[0]


def _records(text: str, delimiter: str) -> list[list[str]]:
    try:
        return list(itertools.islice(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), SAMPLE_RECORDS))
    except csv.Error:  # e.g. a quote this delimiter leaves open to the end of the file: it does not fit
        return []


def _column_names(where: str, header: list[str]) -> list[str]:
    names = [name or f"Unnamed: {index}" for index, name in enumerate(header)]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise DataError(f"{where}: the header names column(s) {duplicates} twice; rename one of each.")
    return names
