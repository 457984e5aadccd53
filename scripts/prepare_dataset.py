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

from phi3v.errors import DataError, run_script, usage_errors
from phi3v.preparation.fetch import FetchSettings
from phi3v.preparation.prepare import DEFAULT_CACHE_DIR, STRATIFY_FIELDS, prepare_catalogue
from phi3v.preparation.sources import CATALOGUE_FIELDS, DEFAULT_COLUMN_MAPPING, DEFAULT_HUB_DATASET
from phi3v.preparation.storage import check_output_dir


def column_pair(text: str) -> tuple[str, str]:
    field, separator, column = text.partition("=")
    if not separator or not field or not column:
        raise argparse.ArgumentTypeError(f"expected FIELD=SOURCE_COLUMN, e.g. image=local_path; got {text!r}")
    return field, column


def make_parser() -> argparse.ArgumentParser:
    defaults = FetchSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Source
    parser.add_argument(
        "--source",
        default=DEFAULT_HUB_DATASET,
        help="Hub dataset id, or a local .parquet, .csv or .jsonl (JSON Lines) file (default: %(default)s).",
    )
    parser.add_argument("--split", default="train", help="Split of a Hub dataset to read (default: %(default)s).")
    parser.add_argument(
        "--column",
        action="append",
        type=column_pair,
        default=[],
        metavar="FIELD=SOURCE_COLUMN",
        help=f"Map one of our fields {list(CATALOGUE_FIELDS)} to a source column; repeat for several. "
        f"Defaults: {DEFAULT_COLUMN_MAPPING}.",
    )
    parser.add_argument(
        "--allow_local_paths",
        action="store_true",
        help="Let a local table name image files outside its folder (absolute paths, file:// URLs, ../). Rows of a "
        "Hub dataset never read local files.",
    )
    # Output
    parser.add_argument("--output_dir", "--output", required=True, help="Directory to save the prepared dataset in.")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace --output_dir if it holds a previously prepared dataset (other directories are never deleted).",
    )
    parser.add_argument(
        "--cache_dir",
        default=str(DEFAULT_CACHE_DIR),
        help="Image cache; a rerun with the same cache downloads nothing again (default: %(default)s).",
    )
    # Splits
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split (default: %(default)s).")
    parser.add_argument(
        "--validation_fraction",
        type=float,
        default=0.1,
        help="Share of products for validation (default: %(default)s).",
    )
    parser.add_argument(
        "--test_fraction", type=float, default=0.1, help="Share of products for test (default: %(default)s)."
    )
    parser.add_argument(
        "--stratify_by",
        default="category3_code",
        choices=STRATIFY_FIELDS,
        help="Category field the splits are stratified by (default: %(default)s).",
    )
    # Fetching
    parser.add_argument(
        "--max_workers", type=int, default=8, help="Images fetched concurrently (default: %(default)s)."
    )
    parser.add_argument(
        "--connect_timeout",
        type=float,
        default=defaults.connect_timeout,
        help="Seconds to connect (default: %(default)s).",
    )
    parser.add_argument(
        "--read_timeout",
        type=float,
        default=defaults.read_timeout,
        help="Seconds to wait for the server between bytes (default: %(default)s).",
    )
    parser.add_argument(
        "--max_retries",
        type=int,
        default=defaults.max_retries,
        help="Retries after a timeout, connection error, HTTP 429 or 5xx (default: %(default)s).",
    )
    parser.add_argument(
        "--retry_backoff",
        type=float,
        default=defaults.retry_backoff,
        help="Seconds before the first retry, doubled for each next one (default: %(default)s).",
    )
    parser.add_argument(
        "--max_image_bytes",
        type=int,
        default=defaults.max_bytes,
        help="Largest image file accepted (default: %(default)s).",
    )
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=defaults.max_pixels,
        help="Largest width x height accepted, checked before decoding (default: %(default)s).",
    )
    parser.add_argument("--no_progress", action="store_true", help="Do not show a progress bar.")
    return parser


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    check_output_dir(args.output_dir, args.overwrite, inputs=[args.source, args.cache_dir])
    fetch_settings = FetchSettings(
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        max_retries=args.max_retries,
        retry_backoff=args.retry_backoff,
        max_bytes=args.max_image_bytes,
        max_pixels=args.max_image_pixels,
    )
    manifest = prepare_catalogue(
        args.source,
        args.output_dir,
        column_mapping=dict(args.column),
        split=args.split,
        cache_dir=args.cache_dir,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        stratify_by=args.stratify_by,
        fetch_settings=fetch_settings,
        max_workers=args.max_workers,
        allow_local_paths=args.allow_local_paths,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        command=shlex.join(["python", *sys.argv]),
    )
    kept = sum(manifest["rows_kept"].values())
    print(f"Kept {kept} of {manifest['rows_in']} rows {manifest['rows_kept']}; dropped {manifest['rows_dropped']}.")
    print(f"Saved to {args.output_dir} (manifest.json, dropped.jsonl).")
    for warning in manifest["warnings"]:
        print(f"WARNING: {args.output_dir}: {warning}", file=sys.stderr)
    if kept == 0:
        raise DataError(
            f"No row of {args.source} was usable; dropped {manifest['rows_dropped']}. "
            f"Each row's reason is in {args.output_dir}/dropped.jsonl."
        )


if __name__ == "__main__":
    parser = make_parser()
    run_script(lambda: main(usage_errors(parser).parse_args()))
