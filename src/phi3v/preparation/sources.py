"""Catalogue sources: a Hub dataset id or a local Parquet / CSV / JSON Lines file, read into rows with our field names.
Local files are read by `datasets`' own Parquet, CSV and JSON readers, as training data is (`phi3v.data.loading`); a
CSV file in the encoding and with the delimiter `phi3v.data.tables.open_csv` detects or is given, every line checked.

The recipe needs seven fields per product (`CATALOGUE_FIELDS`). `DEFAULT_COLUMN_MAPPING` maps them to the columns of the
reference catalogue, `DBQ/Burberry.Product.prices.United.States`; any other catalogue works by mapping its own column
names, e.g. `{"image": "local_path", "full_price": "price_usd"}`.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets

from phi3v.data.loading import FILE_BUILDERS
from phi3v.data.tables import CsvTable, open_csv
from phi3v.errors import DataError, MissingPathError, UsageError


DEFAULT_HUB_DATASET = "DBQ/Burberry.Product.prices.United.States"

CATALOGUE_FIELDS = (
    "product_code",
    "title",
    "category1_code",
    "category2_code",
    "category3_code",
    "full_price",
    "image",
)

# Our field name -> column name in the DBQ catalogues.
DEFAULT_COLUMN_MAPPING = {field: field for field in CATALOGUE_FIELDS} | {"image": "imageurl"}


@dataclass
class SourceTable:
    """A catalogue read from its source, before any cleaning.

    Args:
        description (`dict`):
            What the source is, for the manifest: `kind` (`"local_file"` or `"hub"`), `path` or `dataset_id` and
            `split`, and `fingerprint` (`"sha256:<hex>"` of the file bytes, or of the rows for a Hub dataset); for a
            CSV file, the `encoding` and `delimiter` it was read with.
        rows (`list[dict]`):
            One dict per source row, in source order, keyed by `CATALOGUE_FIELDS`. Values are as read (strings,
            numbers or `None`); cleaning parses them.
        base_dir (`Path` or `None`):
            Directory that relative local image paths are resolved against: the table file's directory. `None` for a
            Hub dataset, whose rows may not name local files.
    """

    description: dict
    rows: list[dict]
    base_dir: Path | None


def resolve_column_mapping(column_mapping: Mapping[str, str] | None) -> dict[str, str]:
    """Lays `column_mapping` over `DEFAULT_COLUMN_MAPPING` and checks that it only names our fields."""
    column_mapping = dict(column_mapping or {})
    unknown = sorted(set(column_mapping) - set(CATALOGUE_FIELDS))
    if unknown:
        raise UsageError(f"column_mapping has unknown field(s) {unknown}; the fields are {list(CATALOGUE_FIELDS)}.")
    return DEFAULT_COLUMN_MAPPING | column_mapping


def load_source(
    source: str | Path,
    column_mapping: Mapping[str, str] | None = None,
    split: str = "train",
    encoding: str | None = None,
    delimiter: str | None = None,
) -> SourceTable:
    """Reads a catalogue from a local file or the Hub and renames its columns to `CATALOGUE_FIELDS`.

    Args:
        source (`str` or `Path`):
            A local `.parquet`, `.csv` or `.jsonl`/`.json` (JSON Lines) file, or a Hub dataset id such as
            `"DBQ/Burberry.Product.prices.United.States"`. Anything that is not an existing file and has no table
            suffix is treated as a Hub id.
        column_mapping (`Mapping[str, str]`, *optional*):
            Our field name -> source column name, for the fields that differ from `DEFAULT_COLUMN_MAPPING`.
        split (`str`, *optional*, defaults to `"train"`):
            Split to read from a Hub dataset (local files have one table).
        encoding (`str`, *optional*):
            A CSV file's encoding, instead of detecting it (`phi3v.data.tables`).
        delimiter (`str`, *optional*):
            A CSV file's delimiter, instead of detecting it.

    Returns:
        `SourceTable`: the rows with our field names, where they came from and their fingerprint.
    """
    mapping = resolve_column_mapping(column_mapping)
    path = Path(source)
    if path.suffix.lower() in FILE_BUILDERS or path.exists():
        records, description = _read_local_file(path, encoding, delimiter)
        base_dir = path.resolve().parent
    elif encoding or delimiter:
        raise UsageError(f"--encoding and --delimiter are for a local CSV file; {source} is a Hub dataset id.")
    else:
        records, description = _read_hub_dataset(str(source), split)
        base_dir = None

    if not records:
        raise DataError(f"Source {source} has no rows.")
    available = set().union(*records)  # JSON Lines records may each carry a different subset of keys
    missing = [column for column in mapping.values() if column not in available]
    if missing:
        raise DataError(
            f"Source {source} has no column(s) {missing}. Its columns are {sorted(available)}; map our fields to "
            f"them with column_mapping (current mapping: {mapping})."
        )
    rows = [{field: record.get(column) for field, column in mapping.items()} for record in records]
    return SourceTable(description=description | {"column_mapping": mapping}, rows=rows, base_dir=base_dir)


def _read_local_file(path: Path, encoding: str | None, delimiter: str | None) -> tuple[list[dict], dict]:
    if not path.is_file():
        raise MissingPathError(f"Catalogue file {path} does not exist.")
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise UsageError(f"Cannot read {path}: use a {', '.join(FILE_BUILDERS)} file or a Hub dataset id.")
    if builder != "csv" and (encoding or delimiter):
        raise UsageError(f"--encoding and --delimiter are for a CSV file; {path} is {builder}.")
    content = path.read_bytes()
    description = {"kind": "local_file", "path": str(path.resolve())}
    records = []  # `load_source` says "has no rows"
    if builder == "csv" and content.strip():
        table = open_csv(path, encoding, delimiter)
        description |= table.describe()
        if table.num_rows:
            records = _read_table(path, builder, _csv_options(table))
        if len(records) != table.num_rows:  # pandas must read the records `open_csv` checked, no more, no fewer
            raise DataError(
                f"{path}: {table.num_rows} records checked but {len(records)} rows read; pass --delimiter."
            )
    elif content.strip():
        records = _read_table(path, builder, {})
    fingerprint = hashlib.sha256(content).hexdigest()
    return records, description | {"fingerprint": f"sha256:{fingerprint}"}


def _csv_options(table: CsvTable) -> dict:
    """The CSV reader's options: the file's encoding and delimiter, and every value a string, as written.

    Type inference would turn product code "00123" into 123, a price "1.290" into 1.29 and a price column with one
    "$1,290.00" into strings anyway, and pandas' missing-value markers would turn a title "NA" into nothing; cleaning
    parses what it needs.
    """
    return table.read_options() | {
        "features": datasets.Features({column: datasets.Value("string") for column in table.columns}),
        "keep_default_na": False,
    }


def _read_table(path: Path, builder: str, options: dict) -> list[dict]:
    """The rows of a local table, read by `datasets`' reader for it (which refuses a table without rows)."""
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
        # `datasets` names the Arrow error; for JSON Lines the line to fix is what the user needs.
        problem = _json_lines_problem(path) if builder == "json" else None
        raise DataError(problem or f"Cannot read {path} as {builder}: {error.__cause__ or error}") from None
    return table.to_list()


def _json_lines_problem(path: Path) -> str | None:
    """What is wrong with the first line of a JSON Lines file that is not a JSON object, or `None`."""
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                return f"{path} line {line_number} is not valid JSON ({error}); expected JSON Lines."
            if not isinstance(record, dict):
                return f"{path} line {line_number} is a {type(record).__name__}, expected a JSON object."
    return None


def _read_hub_dataset(dataset_id: str, split: str) -> tuple[list[dict], dict]:
    records = datasets.load_dataset(dataset_id, split=split).to_list()
    # The Hub commit is not exposed by `load_dataset`; hashing the rows pins the content that was actually read.
    content = json.dumps(records, sort_keys=True, default=str).encode()
    fingerprint = hashlib.sha256(content).hexdigest()
    return records, {"kind": "hub", "dataset_id": dataset_id, "split": split, "fingerprint": f"sha256:{fingerprint}"}
