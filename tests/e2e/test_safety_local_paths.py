"""Local image paths in catalogue rows (`scripts/prepare_dataset.py`): a Hub dataset's rows never read local files
(each such row is dropped as `local_path_from_hub`); a local table reads files inside its own folder, and elsewhere
only with `--allow_local_paths`. A preparation that keeps no row exits non-zero naming the drop reasons; one that
leaves a split empty warns on standard error and in the manifest.

The script runs in this process (`run_script_here`, as `python scripts/prepare_dataset.py` would), which spares the
imports of a new interpreter; a Hub dataset is stood in for by replacing the Hub reader (`fake_hub_rows`)."""

import csv
import json
import os

from phi3v.preparation import sources

from .. import data_helpers_images as images
from ..safety_helpers import REPO_ROOT, output_of, run_script_here


COLUMNS = ["product_code", "title", "category1_code", "category2_code", "category3_code", "full_price", "imageurl"]


def fake_hub_rows(monkeypatch, rows: list[dict]) -> None:
    """The Hub reader answers every dataset id and split with `rows`."""
    description = {"kind": "hub", "fingerprint": "sha256:fake"}
    monkeypatch.setattr(
        sources,
        "_read_hub_dataset",
        lambda dataset_id, split: (rows, description | {"dataset_id": dataset_id, "split": split}),
    )


def row(code, image_ref):
    return dict(
        zip(COLUMNS, [code, f"Scarf {code}", "WOMEN", "ACCESSORIES", "SCARVES", "590.0", image_ref], strict=True)
    )


def dropped_reasons(output_dir):
    return {entry["product_code"]: entry["reason"] for entry in map(json.loads, (output_dir / "dropped.jsonl").open())}


def prepare(*args):
    return run_script_here("prepare_dataset.py", *args, "--no_progress")


def test_hub_rows_naming_local_files_are_dropped_and_nothing_kept_fails(tmp_path, monkeypatch):
    photo = tmp_path / "private" / "photo.png"
    photo.parent.mkdir()
    photo.write_bytes(images.png())
    refs = {"H0": photo.as_uri(), "H1": str(photo), "H2": os.path.relpath(photo, REPO_ROOT)}  # all readable here
    fake_hub_rows(monkeypatch, [row(code, ref) for code, ref in refs.items()])
    output_dir = tmp_path / "prepared"
    result = prepare("--source", "some-org/catalogue", "--output_dir", output_dir)
    assert result.returncode == 1, output_of(result)[-3000:]
    assert "No row of some-org/catalogue was usable; dropped {'local_path_from_hub': 3}" in result.stderr
    assert dropped_reasons(output_dir) == dict.fromkeys(refs, "local_path_from_hub")
    assert json.loads((output_dir / "manifest.json").read_text())["images"]["local_file"] == 0


def test_local_tables_read_their_own_folder_and_elsewhere_only_when_allowed(tmp_path):
    table_dir = tmp_path / "table"
    (table_dir / "pictures").mkdir(parents=True)
    (table_dir / "pictures" / "bag.png").write_bytes(images.png())
    outside = tmp_path / "outside.png"
    outside.write_bytes(images.png())
    rows = [
        row("P0", "pictures/bag.png"),
        row("P1", "../outside.png"),
        row("P2", str(outside)),
        row("P3", (table_dir / "pictures" / "bag.png").as_uri()),
    ]
    table = table_dir / "catalogue.csv"
    with open(table, "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    strict = prepare("--source", table, "--output_dir", tmp_path / "strict")
    assert strict.returncode == 0, output_of(strict)[-3000:]
    assert dropped_reasons(tmp_path / "strict") == dict.fromkeys(("P1", "P2", "P3"), "local_path_outside_table")
    manifest = json.loads((tmp_path / "strict" / "manifest.json").read_text())
    assert manifest["rows_kept"] == {"train": 1, "validation": 0, "test": 0}
    for split in ("validation", "test"):
        assert f"WARNING: {tmp_path / 'strict'}: split '{split}' is empty" in strict.stderr
        assert any(warning.startswith(f"split '{split}' is empty") for warning in manifest["warnings"])

    allowed = prepare("--source", table, "--output_dir", tmp_path / "allowed", "--allow_local_paths")
    assert allowed.returncode == 0, output_of(allowed)[-3000:]
    manifest = json.loads((tmp_path / "allowed" / "manifest.json").read_text())
    assert sum(manifest["rows_kept"].values()) == 4 and manifest["rows_dropped"] == {}
