"""The on-disk format of a prepared catalogue, shared by real and synthetic catalogues.

```
output_dir/
    dataset_dict.json, train/, validation/, test/   # `DatasetDict.save_to_disk`; load with `datasets.load_from_disk`
    manifest.json                                  # source, fingerprint, counts per split and per drop reason, command
    dropped.jsonl                                  # one line per dropped source row, with its reason
    .phi3v-output.json                             # marks the directory as this project's catalogue
```
"""

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import datasets

from phi3v import outputs

from .report import DroppedRow
from .splits import SPLIT_NAMES


MANIFEST_NAME = "manifest.json"
DROPPED_NAME = "dropped.jsonl"
CATALOGUE_KIND = "catalogue"

CATALOGUE_FEATURES = datasets.Features(
    {
        "product_code": datasets.Value("string"),
        "title": datasets.Value("string"),
        "category1_code": datasets.Value("string"),
        "category2_code": datasets.Value("string"),
        "category3_code": datasets.Value("string"),
        "full_price": datasets.Value("float64"),
        "image": datasets.Image(),  # RGB, EXIF orientation applied
        "image_width": datasets.Value("int32"),  # size of the stored image, to count image tokens without decoding
        "image_height": datasets.Value("int32"),
        "source_row": datasets.Value("int64"),  # index of the row in the source table
    }
)


def check_output_dir(output_dir: str | Path, overwrite: bool, inputs: Sequence[str | Path | None] = ()) -> None:
    """Refuses to write where it would destroy something (`phi3v.outputs.check_output_dir` for catalogues).

    An existing non-empty `output_dir` is only replaced with `overwrite=True`, and only when it holds a previously
    prepared catalogue: a directory a user made for something else is never deleted. An output that is, holds or lies
    inside one of `inputs` (e.g. the source table) is refused.

    Raises:
        `FileExistsError`: when `output_dir` exists and may not be replaced.
    """
    outputs.check_output_dir(output_dir, overwrite, inputs, kind=CATALOGUE_KIND)


def save_catalogue(
    output_dir: str | Path,
    rows: Sequence[dict],
    split_indices: dict[str, list[int]],
    manifest: dict,
    dropped: Sequence[DroppedRow],
    overwrite: bool = False,
) -> dict:
    """Writes the splits, `manifest.json` and `dropped.jsonl`, replacing `output_dir` only once all are written.

    Args:
        output_dir (`str` or `Path`):
            Directory to write; see `check_output_dir` for when an existing one is replaced.
        rows (`Sequence[dict]`):
            Kept rows with the `CATALOGUE_FEATURES` columns; `image` is a `StoredImage`-like object with `data`.
        split_indices (`dict[str, list[int]]`):
            Row indices for each of `SPLIT_NAMES`, e.g. from `split_by_product_code`.
        manifest (`dict`):
            Manifest fields: `rows_in` (the number of source rows) and anything else to record (source, command,
            settings...). `rows_kept`, `rows_dropped` and `warnings` (empty splits) are added here.
        dropped (`Sequence[DroppedRow]`):
            Every source row that is not kept.
        overwrite (`bool`, *optional*, defaults to `False`):
            Whether to replace an existing prepared catalogue.

    Returns:
        `dict`: the manifest as written.

    Raises:
        `ValueError`: when a source row is neither kept nor dropped, or both, or a kept row is in no split or in two.
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)
    accounted = sorted([row["source_row"] for row in rows] + [row.source_row for row in dropped])
    if accounted != list(range(manifest["rows_in"])):
        raise ValueError(f"Every one of the {manifest['rows_in']} source rows must be either kept or dropped, once.")
    assigned = sorted(index for name in SPLIT_NAMES for index in split_indices[name])
    if assigned != list(range(len(rows))):
        raise ValueError("split_indices must assign every kept row to exactly one split.")
    manifest = manifest | {
        "rows_kept": {name: len(split_indices[name]) for name in SPLIT_NAMES},
        "rows_dropped": dict(sorted(Counter(str(row.reason) for row in dropped).items())),
        "warnings": empty_split_warnings({name: len(split_indices[name]) for name in SPLIT_NAMES}),
    }

    dataset_dict = datasets.DatasetDict(
        {name: _to_dataset([rows[index] for index in split_indices[name]]) for name in SPLIT_NAMES}
    )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.", suffix=".partial"))
    try:
        # An empty split saved with the default sharding has no shard file and cannot be loaded back.
        num_shards = {name: 1 for name, dataset in dataset_dict.items() if len(dataset) == 0}
        dataset_dict.save_to_disk(staging_dir / "dataset", num_shards=num_shards)
        staged = staging_dir / "dataset"
        (staged / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        report_lines = [
            json.dumps(row.to_json_dict()) + "\n" for row in sorted(dropped, key=lambda row: row.source_row)
        ]
        (staged / DROPPED_NAME).write_text("".join(report_lines))
        outputs.mark_output_dir(staged, CATALOGUE_KIND, written_by="phi3v.preparation.storage.save_catalogue")
        if output_dir.exists():  # empty, or a prepared catalogue that `check_output_dir` allowed us to replace
            shutil.rmtree(output_dir)
        staged.rename(output_dir)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return manifest


def empty_split_warnings(rows_kept: dict[str, int]) -> list[str]:
    """One warning per empty split (a run that trains or evaluates on it would fail or mean nothing)."""
    if not any(rows_kept.values()):
        return ["every split is empty: no source row was usable (see dropped.jsonl)"]
    return [
        f"split {name!r} is empty: too few products for its fraction; use more products or a larger fraction"
        for name, count in rows_kept.items()
        if count == 0
    ]


def _to_dataset(rows: Sequence[dict]) -> datasets.Dataset:
    columns = {name: [] for name in CATALOGUE_FEATURES}
    for row in rows:
        for name in CATALOGUE_FEATURES:
            columns[name].append({"bytes": row["image"].data, "path": None} if name == "image" else row[name])
    return datasets.Dataset.from_dict(columns, features=CATALOGUE_FEATURES)
