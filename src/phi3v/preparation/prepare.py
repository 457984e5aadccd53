"""Preparing a catalogue for training: source -> cleaning -> images -> de-duplication -> splits -> disk.

Every source row ends up either in a split or in `dropped.jsonl` with its reason; the manifest's counts add up to the
number of source rows.
"""

import logging
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from phi3v.errors import UsageError

from .cache import ImageCache
from .cleaning import clean_rows, deduplicate_by_product_code
from .fetch import FetchSettings, ImageFetcher
from .images import ImageRejected
from .prices import decimal_mark
from .report import DroppedRow
from .sources import load_source
from .splits import check_split_fractions, split_by_product_code
from .storage import check_output_dir, save_catalogue


logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "phi3v" / "images"
STRATIFY_FIELDS = ("category1_code", "category2_code", "category3_code")


def prepare_catalogue(
    source: str | Path,
    output_dir: str | Path,
    column_mapping: dict[str, str] | None = None,
    split: str = "train",
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    stratify_by: str = "category3_code",
    fetch_settings: FetchSettings | None = None,
    max_workers: int = 8,
    allow_local_paths: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Reads a catalogue, fetches and verifies its images, cleans and splits it, and saves it with a manifest.

    Args:
        source (`str` or `Path`):
            A Hub dataset id such as `DEFAULT_HUB_DATASET` (`"DBQ/Burberry.Product.prices.United.States"`), or a
            local `.parquet`, `.csv` or `.jsonl` file.
        output_dir (`str` or `Path`):
            Where to save the `DatasetDict` (`train`, `validation`, `test`), `manifest.json` and `dropped.jsonl`.
        column_mapping (`dict[str, str]`, *optional*):
            Our field name -> source column, for fields whose column differs from `sources.DEFAULT_COLUMN_MAPPING`,
            e.g. `{"image": "local_path"}`.
        split (`str`, *optional*, defaults to `"train"`):
            Split of a Hub dataset to read.
        cache_dir (`str` or `Path`, *optional*, defaults to `~/.cache/phi3v/images`):
            Image cache; a rerun with the same cache downloads nothing it already has.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the split.
        validation_fraction (`float`, *optional*, defaults to `0.1`):
            Share of product codes in the validation split.
        test_fraction (`float`, *optional*, defaults to `0.1`):
            Share of product codes in the test split.
        stratify_by (`str`, *optional*, defaults to `"category3_code"`):
            Category field the splits are stratified by.
        fetch_settings (`FetchSettings`, *optional*):
            Timeouts, retries and size caps for images; `FetchSettings()` by default.
        max_workers (`int`, *optional*, defaults to `8`):
            Images fetched concurrently.
        allow_local_paths (`bool`, *optional*, defaults to `False`):
            Let a local table name image files outside its own folder (absolute paths, `file://` URLs, `../`). Rows of
            a Hub dataset never read local files: such a row is dropped as `local_path_from_hub`.
        encoding (`str`, *optional*):
            A CSV source's encoding, instead of detecting it (`phi3v.data.tables`).
        delimiter (`str`, *optional*):
            A CSV source's delimiter, instead of detecting it.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace `output_dir` if it holds a previously prepared catalogue. Other non-empty directories are never
            replaced.
        progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar while fetching images.
        command (`str`, *optional*):
            The command to record in the manifest; defaults to this process's command line.

    Returns:
        `dict`: the manifest, as written to `output_dir/manifest.json`.
    """
    if stratify_by not in STRATIFY_FIELDS:
        raise UsageError(f"stratify_by must be one of {STRATIFY_FIELDS}, got {stratify_by!r}.")
    # Fail on bad arguments before spending time on downloads.
    check_split_fractions(validation_fraction, test_fraction)
    check_output_dir(output_dir, overwrite, inputs=[source])
    fetch_settings = fetch_settings or FetchSettings()

    table = load_source(source, column_mapping=column_mapping, split=split, encoding=encoding, delimiter=delimiter)
    logger.info("Read %d rows from %s", len(table.rows), source)
    # One decimal mark for the whole price column: a cell such as `1,290` is read by what the others show.
    price_mark = decimal_mark([row["full_price"] for row in table.rows], table.description.get("delimiter"))
    rows, dropped = clean_rows((row | {"source_row": index} for index, row in enumerate(table.rows)), price_mark)

    fetcher = ImageFetcher(fetch_settings, ImageCache(cache_dir), allow_local_paths=allow_local_paths)
    images = fetcher.fetch_all((row["image_url"] for row in rows), table.base_dir, max_workers, progress)
    rows_with_images = []
    for row in rows:
        image = images[row["image_url"]]
        if isinstance(image, ImageRejected):
            dropped.append(
                DroppedRow(row["source_row"], row["product_code"], row["image_url"], image.reason, image.detail)
            )
        else:
            rows_with_images.append(row | {"image": image, "image_width": image.width, "image_height": image.height})
    rows, duplicates = deduplicate_by_product_code(rows_with_images)
    dropped += duplicates

    split_indices = split_by_product_code(
        [row["product_code"] for row in rows],
        [row[stratify_by] for row in rows],
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    manifest = {
        "source": table.description,
        "command": command if command is not None else shlex.join(["python", *sys.argv]),
        "rows_in": len(table.rows),
        "price_decimal_mark": price_mark,
        "seed": seed,
        "split_fractions": {"validation": validation_fraction, "test": test_fraction},
        "stratify_by": stratify_by,
        "fetch_settings": asdict(fetch_settings),
        "images": {"downloaded": 0, "from_cache": 0, "local_file": 0} | dict(fetcher.counts),
    }
    manifest = save_catalogue(output_dir, rows, split_indices, manifest, dropped, overwrite=overwrite)
    for warning in manifest["warnings"]:
        logger.warning("%s: %s", output_dir, warning)
    logger.info(
        "Kept %s of %d rows; dropped %s (reasons in %s/dropped.jsonl)",
        manifest["rows_kept"],
        manifest["rows_in"],
        manifest["rows_dropped"],
        output_dir,
    )
    return manifest
