"""Prepare a product catalogue for training: fetch and verify its images, clean it, split it by product code.

Run as (the reference catalogue, from the Hub; needs network):

    python scripts/prepare_dataset.py --output_dir data/burberry

or on a local table whose image column holds paths relative to the table (or http(s) URLs):

    python scripts/prepare_dataset.py --source catalogue.parquet --column image=local_path --output_dir data/mine

The output directory holds a `DatasetDict` (`datasets.load_from_disk`) with `train`, `validation` and `test`, a
`manifest.json` (source and fingerprint, rows in, rows kept per split, rows dropped per reason, this command) and
`dropped.jsonl` (every dropped row with its reason). Rerunning with the same `--cache_dir` downloads nothing twice.
"""

import argparse
import logging
import shlex
import sys
from dataclasses import dataclass, field

from phi3v.arguments import OutputArguments, ScriptArgumentParser, check_flag
from phi3v.data.tables import DELIMITER_HELP, ENCODING_HELP, check_delimiter, check_encoding
from phi3v.errors import DataError, run_script
from phi3v.preparation.fetch import FetchSettings
from phi3v.preparation.prepare import DEFAULT_CACHE_DIR, STRATIFY_FIELDS, prepare_catalogue
from phi3v.preparation.sources import CATALOGUE_FIELDS, DEFAULT_COLUMN_MAPPING, DEFAULT_HUB_DATASET
from phi3v.preparation.storage import check_output_dir


def column_pair(text: str) -> tuple[str, str]:
    field, separator, column = text.partition("=")
    if not separator or not field or not column:
        raise argparse.ArgumentTypeError(f"expected FIELD=SOURCE_COLUMN, e.g. image=local_path; got {text!r}")
    return field, column


@dataclass
class PrepareArguments:
    """The source table, its columns, and the splits made of it."""

    source: str = field(
        default=DEFAULT_HUB_DATASET,
        metadata={
            "help": "Hub dataset id, or a local .parquet, .csv or .jsonl (JSON Lines) file (default: %(default)s)."
        },
    )
    split: str = field(default="train", metadata={"help": "Split of a Hub dataset to read (default: %(default)s)."})
    encoding: str | None = field(default=None, metadata={"help": ENCODING_HELP})
    delimiter: str | None = field(default=None, metadata={"help": DELIMITER_HELP})
    column: list[str] = field(
        default_factory=list,
        metadata={
            "help": f"Map one of our fields {list(CATALOGUE_FIELDS)} to a source column; repeat or list several. "
            f"Defaults: {DEFAULT_COLUMN_MAPPING}.",
            "action": "extend",
            "metavar": "FIELD=SOURCE_COLUMN",
        },
    )
    allow_local_paths: bool = field(
        default=False,
        metadata={
            "help": "Let a local table name image files outside its folder (absolute paths, file:// URLs, ../). Rows "
            "of a Hub dataset never read local files."
        },
    )
    cache_dir: str = field(
        default=str(DEFAULT_CACHE_DIR),
        metadata={"help": "Image cache; a rerun with the same cache downloads nothing again (default: %(default)s)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the split (default: %(default)s)."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of products for validation (default: %(default)s)."}
    )
    test_fraction: float = field(default=0.1, metadata={"help": "Share of products for test (default: %(default)s)."})
    stratify_by: str = field(
        default="category3_code",
        metadata={
            "help": "Category field the splits are stratified by (default: %(default)s).",
            "choices": STRATIFY_FIELDS,
        },
    )
    no_progress: bool = field(default=False, metadata={"help": "Do not show a progress bar."})

    def __post_init__(self):
        for text in self.column:
            check_flag("column", text, column_pair)
        self.encoding, self.delimiter = check_encoding(self.encoding), check_delimiter(self.delimiter)

    @property
    def column_mapping(self) -> dict[str, str]:
        """`--column` as our field -> the source's column."""
        return dict(map(column_pair, self.column))


@dataclass
class FetchArguments:
    """How images are fetched: `phi3v.preparation.fetch.FetchSettings` (by these flag names) and the workers."""

    max_workers: int = field(default=8, metadata={"help": "Images fetched concurrently (default: %(default)s)."})
    connect_timeout: float = field(
        default=FetchSettings.connect_timeout, metadata={"help": "Seconds to connect (default: %(default)s)."}
    )
    read_timeout: float = field(
        default=FetchSettings.read_timeout,
        metadata={"help": "Seconds to wait for the server between bytes (default: %(default)s)."},
    )
    max_retries: int = field(
        default=FetchSettings.max_retries,
        metadata={"help": "Retries after a timeout, connection error, HTTP 429 or 5xx (default: %(default)s)."},
    )
    retry_backoff: float = field(
        default=FetchSettings.retry_backoff,
        metadata={"help": "Seconds before the first retry, doubled for each next one (default: %(default)s)."},
    )
    max_image_bytes: int = field(
        default=FetchSettings.max_bytes, metadata={"help": "Largest image file accepted (default: %(default)s)."}
    )
    max_image_pixels: int = field(
        default=FetchSettings.max_pixels,
        metadata={"help": "Largest width x height accepted, checked before decoding (default: %(default)s)."},
    )

    def settings(self) -> FetchSettings:
        return FetchSettings(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            max_bytes=self.max_image_bytes,
            max_pixels=self.max_image_pixels,
        )


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser((PrepareArguments, OutputArguments, FetchArguments), description=__doc__)


def main(args: PrepareArguments, output_args: OutputArguments, fetch_args: FetchArguments) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    check_output_dir(output_args.output_dir, output_args.overwrite, inputs=[args.source, args.cache_dir])
    manifest = prepare_catalogue(
        args.source,
        output_args.output_dir,
        column_mapping=args.column_mapping,
        split=args.split,
        cache_dir=args.cache_dir,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        stratify_by=args.stratify_by,
        fetch_settings=fetch_args.settings(),
        max_workers=fetch_args.max_workers,
        allow_local_paths=args.allow_local_paths,
        encoding=args.encoding,
        delimiter=args.delimiter,
        overwrite=output_args.overwrite,
        progress=not args.no_progress,
        command=shlex.join(["python", *sys.argv]),
    )
    kept = sum(manifest["rows_kept"].values())
    print(f"Kept {kept} of {manifest['rows_in']} rows {manifest['rows_kept']}; dropped {manifest['rows_dropped']}.")
    print(f"Saved to {output_args.output_dir} (manifest.json, dropped.jsonl).")
    for warning in manifest["warnings"]:
        print(f"WARNING: {output_args.output_dir}: {warning}", file=sys.stderr)
    if kept == 0:
        raise DataError(
            f"No row of {args.source} was usable; dropped {manifest['rows_dropped']}. "
            f"Each row's reason is in {output_args.output_dir}/dropped.jsonl."
        )


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
