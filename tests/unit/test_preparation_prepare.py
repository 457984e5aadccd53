import json
import multiprocessing
import os
import runpy
import signal
import sys
import time
from pathlib import Path

import datasets
import pytest

from phi3v.preparation.fetch import FetchSettings
from phi3v.preparation.prepare import prepare_catalogue
from phi3v.preparation.splits import SPLIT_NAMES
from phi3v.preparation.storage import CATALOGUE_FEATURES, save_catalogue

from .. import data_helpers_images as images
from ..data_helpers_server import running_server, unused_port_url


REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_SETTINGS = FetchSettings(
    connect_timeout=2.0, read_timeout=0.5, max_retries=1, retry_backoff=0.01, max_bytes=1_000_000
)


@pytest.fixture
def server():
    with running_server() as server:
        yield server


def catalogue_row(code, image, price=590.0, title="Beige Check Scarf", category3="SCARVES", **overrides):
    row = {
        "product_code": code,
        "title": title,
        "category1_code": "WOMEN",
        "category2_code": "ACCESSORIES",
        "category3_code": category3,
        "full_price": price,
        "imageurl": image,
        "brand": "Burberry",  # extra source columns are ignored
    }
    return row | overrides


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_dropped(output_dir: Path) -> dict[int, dict]:
    lines = (output_dir / "dropped.jsonl").read_text().splitlines()
    return {entry["source_row"]: entry for entry in map(json.loads, lines)}


def kept_rows(output_dir: Path) -> dict[int, tuple[str, dict]]:
    dataset_dict = datasets.load_from_disk(str(output_dir))
    return {row["source_row"]: (name, row) for name in SPLIT_NAMES for row in dataset_dict[name]}


def test_every_row_is_kept_or_reported_with_its_reason(server, tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "local.png").write_bytes(images.png())
    server.add("/target.jpg", images.jpeg())
    # (source row, expected reason or None for kept)
    cases = [
        (catalogue_row("P00", server.add("/good.jpg", images.jpeg())), None),
        (catalogue_row("P01", server.add("/good.png", images.png(), content_type="image/png"), "$1,290.00"), None),
        (catalogue_row("P02", server.add("/good.webp", images.webp(), content_type="image/webp"), "990"), None),
        (catalogue_row("P03", server.add("/missing.jpg", status=404)), "http_404"),
        (catalogue_row("P04", server.add("/flaky.jpg", images.jpeg(), fail_first=1)), None),
        (catalogue_row("P05", server.add("/broken.jpg", images.jpeg(), fail_first=99)), "http_error"),
        (catalogue_row("P06", server.add("/slow.jpg", images.jpeg(), delay=1.5)), "timeout"),
        (catalogue_row("P07", server.add("/page.html", images.HTML_PAGE, content_type="text/html")), "not_an_image"),
        (catalogue_row("P08", server.add("/truncated.jpg", images.truncated("JPEG"))), "truncated_image"),
        (
            catalogue_row("P09", server.add("/bomb.png", images.png_bomb(), content_type="image/png")),
            "too_many_pixels",
        ),
        (catalogue_row("P10", server.add("/moved.jpg", status=302, location="/target.jpg")), None),
        (catalogue_row("P11", server.add("/rgba.png", images.rgba_png_half_transparent())), None),
        (catalogue_row("P12", server.add("/palette.png", images.palette_png_with_transparency())), None),
        (catalogue_row("P13", server.add("/grey.png", images.grey_png())), None),
        (catalogue_row("P14", server.add("/cmyk.jpg", images.cmyk_jpeg())), None),
        (catalogue_row("P15", server.add("/sixteen-bit.png", images.sixteen_bit_png())), None),
        (catalogue_row("P16", server.add("/rotated.jpg", images.exif_rotated_jpeg(size=(60, 30)))), None),
        (catalogue_row("P17", server.add("/huge.jpg", b"\xff\xd8" + bytes(2_000_000))), "too_many_bytes"),
        (catalogue_row("P18", "pictures/local.png"), None),  # relative to the table file
        (catalogue_row("P19", "pictures/absent.png"), "file_not_found"),
        (catalogue_row("P20", "ftp://example.com/bag.jpg"), "bad_scheme"),
        (catalogue_row("P21", unused_port_url()), "connection_error"),
        (catalogue_row("P22", "N.A."), "missing_image"),
        (catalogue_row("P23", server.url("/good.jpg"), price=None), "missing_price"),
        (catalogue_row("P24", server.url("/good.jpg"), price="call us"), "bad_price"),
        (catalogue_row(None, server.url("/good.jpg")), "missing_product_code"),
        (catalogue_row("P26", server.url("/good.jpg"), title=""), "missing_title"),
        (catalogue_row("P00", server.url("/good.png")), "duplicate_product_code"),  # P00 is kept from row 0
        # The first row of P28 has no usable image, so the second one is kept rather than reported as a duplicate.
        (catalogue_row("P28", server.add("/missing-too.jpg", status=404)), "http_404"),
        (catalogue_row("P28", server.url("/good.webp"), category3="N.A.", category1_code=None), None),
        (catalogue_row("P29", server.add("/pixel.png", images.png(size=(1, 1)))), "image_too_small"),
        (catalogue_row("P30", server.add("/banner.png", images.png(size=(2000, 16)))), "extreme_aspect_ratio"),
    ]
    table = write_jsonl(tmp_path / "catalogue.jsonl", [row for row, _ in cases])

    manifest = prepare_catalogue(
        table, tmp_path / "out", cache_dir=tmp_path / "cache", fetch_settings=FAST_SETTINGS, progress=False
    )

    output_dir = tmp_path / "out"
    dropped, kept = read_dropped(output_dir), kept_rows(output_dir)
    assert set(dropped) | set(kept) == set(range(len(cases)))
    assert not set(dropped) & set(kept)
    for index, (_, expected_reason) in enumerate(cases):
        if expected_reason is None:
            assert index in kept, (index, dropped.get(index))
        else:
            assert dropped[index]["reason"] == expected_reason, (index, dropped[index])

    # The manifest's counts add up to the input, per split and per reason.
    assert manifest == json.loads((output_dir / "manifest.json").read_text())
    assert manifest["rows_in"] == len(cases)
    assert sum(manifest["rows_kept"].values()) + sum(manifest["rows_dropped"].values()) == len(cases)
    expected_reasons = [reason for _, reason in cases if reason is not None]
    assert manifest["rows_dropped"] == {reason: expected_reasons.count(reason) for reason in set(expected_reasons)}
    assert manifest["source"]["kind"] == "local_file"
    assert manifest["source"]["fingerprint"].startswith("sha256:")
    assert manifest["images"]["local_file"] == 1

    # The report says which row, which code and which URL.
    assert dropped[3]["product_code"] == "P03"
    assert dropped[3]["image_url"] == server.url("/missing.jpg")
    assert "HTTP 404" in dropped[3]["detail"]

    # Kept rows: parsed metadata, RGB images whose stored size is the real size, EXIF orientation applied.
    dataset_dict = datasets.load_from_disk(str(output_dir))
    for name in SPLIT_NAMES:
        assert dataset_dict[name].features == CATALOGUE_FEATURES
    for _, row in kept.values():
        assert row["image"].mode == "RGB"
        assert row["image"].size == (row["image_width"], row["image_height"])
    assert kept[1][1]["full_price"] == 1290.0
    assert kept[2][1]["full_price"] == 990.0
    assert kept[16][1]["image"].size == (30, 60)
    assert kept[29][1]["category3_code"] == "N.A."
    assert kept[29][1]["category1_code"] == "N.A."
    assert kept[11][1]["image"].getpixel((35, 10)) == pytest.approx((255, 255, 255), abs=8)


def test_local_parquet_and_csv_with_a_column_mapping(tmp_path):
    (tmp_path / "shots").mkdir()
    rows = []
    for index in range(6):
        (tmp_path / "shots" / f"{index}.jpg").write_bytes(images.jpeg(size=(30 + index, 20)))
        rows.append({"sku": f"00{index}", "name": f"Bag {index}", "c1": "WOMEN", "c2": "BAGS", "c3": "TOTES",
                     "usd": f"${index + 1},000.00", "path": f"shots/{index}.jpg"})  # fmt: skip
    mapping = {"product_code": "sku", "title": "name", "category1_code": "c1", "category2_code": "c2",
               "category3_code": "c3", "full_price": "usd", "image": "path"}  # fmt: skip
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "catalogue.parquet"))
    datasets.Dataset.from_list(rows).to_csv(str(tmp_path / "catalogue.csv"), index=False)

    for suffix in ("parquet", "csv"):
        output_dir = tmp_path / f"out-{suffix}"
        manifest = prepare_catalogue(
            tmp_path / f"catalogue.{suffix}", output_dir, column_mapping=mapping, cache_dir=tmp_path / "cache",
            validation_fraction=0.2, test_fraction=0.2, progress=False,
        )  # fmt: skip
        assert manifest["rows_dropped"] == {}
        assert sum(manifest["rows_kept"].values()) == 6
        kept = kept_rows(output_dir)
        assert sorted(row["product_code"] for _, row in kept.values()) == [f"00{index}" for index in range(6)]
        assert {row["full_price"] for _, row in kept.values()} == {1000.0 * (index + 1) for index in range(6)}
        assert {row["image_width"] for _, row in kept.values()} == {30 + index for index in range(6)}


def test_rerun_with_the_same_cache_downloads_nothing(server, tmp_path):
    rows = [catalogue_row(f"P{index}", server.add(f"/{index}.jpg", images.jpeg())) for index in range(8)]
    table = write_jsonl(tmp_path / "catalogue.jsonl", rows)
    settings = {"cache_dir": tmp_path / "cache", "fetch_settings": FAST_SETTINGS, "progress": False}

    first = prepare_catalogue(table, tmp_path / "first", **settings)
    second = prepare_catalogue(table, tmp_path / "second", **settings)

    assert first["images"] == {"downloaded": 8, "from_cache": 0, "local_file": 0}
    assert second["images"] == {"downloaded": 0, "from_cache": 8, "local_file": 0}
    assert all(server.hits[f"/{index}.jpg"] == 1 for index in range(8))
    assert first["rows_kept"] == second["rows_kept"]


def run_script(script: Path, arguments: list[str]) -> None:
    sys.argv = [script.name, *arguments]
    runpy.run_path(str(script), run_name="__main__")


def test_killed_run_resumes_without_downloading_again(server, tmp_path):
    """SIGKILL the real script while it waits on image 5, then rerun: images 0-4 come from the cache."""
    urls = [server.add(f"/{index}.jpg", images.jpeg()) for index in range(10)]
    server.routes["/5.jpg"].stall = True
    rows = [catalogue_row(f"P{index}", url) for index, url in enumerate(urls)]
    table = write_jsonl(tmp_path / "catalogue.jsonl", rows)
    output_dir, cache_dir = tmp_path / "out", tmp_path / "cache"
    arguments = ["--source", str(table), "--output_dir", str(output_dir), "--cache_dir", str(cache_dir),
                 "--max_workers", "1", "--read_timeout", "300", "--no_progress"]  # fmt: skip

    # A forked child runs the script without paying for `import phi3v` (torch, transformers) again. One worker
    # fetches in row order, so by the time image 5 is requested, images 0-4 are fetched and cached.
    process = multiprocessing.get_context("fork").Process(
        target=run_script, args=(REPO_ROOT / "scripts" / "prepare_dataset.py", arguments)
    )
    process.start()
    try:
        deadline = time.monotonic() + 60
        while server.hits["/5.jpg"] == 0:
            assert process.is_alive(), f"the script exited with {process.exitcode} before reaching image 5"
            assert time.monotonic() < deadline, "the script never reached image 5"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.join()
    assert process.exitcode == -signal.SIGKILL
    assert not output_dir.exists()  # nothing half-written where the dataset goes
    assert [server.hits[f"/{index}.jpg"] for index in range(10)] == [1] * 6 + [0] * 4

    server.routes["/5.jpg"].stall = False
    manifest = prepare_catalogue(table, output_dir, cache_dir=cache_dir, fetch_settings=FAST_SETTINGS, progress=False)

    assert [server.hits[f"/{index}.jpg"] for index in range(10)] == [1] * 5 + [2] + [1] * 4
    assert manifest["images"] == {"downloaded": 5, "from_cache": 5, "local_file": 0}
    assert sum(manifest["rows_kept"].values()) == 10


def test_existing_output_is_never_replaced_silently(tmp_path):
    (tmp_path / "shot.jpg").write_bytes(images.jpeg())
    table = write_jsonl(tmp_path / "catalogue.jsonl", [catalogue_row("P0", "shot.jpg")])
    user_dir = tmp_path / "notes"
    user_dir.mkdir()
    (user_dir / "todo.txt").write_text("mine")
    settings = {"cache_dir": tmp_path / "cache", "progress": False}

    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_catalogue(table, user_dir, **settings)
    with pytest.raises(FileExistsError, match="refusing to delete"):
        prepare_catalogue(table, user_dir, overwrite=True, **settings)
    assert (user_dir / "todo.txt").read_text() == "mine"

    prepare_catalogue(table, tmp_path / "out", **settings)
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_catalogue(table, tmp_path / "out", **settings)
    assert prepare_catalogue(table, tmp_path / "out", overwrite=True, **settings)["rows_in"] == 1
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []  # no staging left


def test_a_one_row_catalogue_saves_and_loads_with_empty_splits(server, tmp_path):
    table = write_jsonl(tmp_path / "catalogue.jsonl", [catalogue_row("P0", server.add("/0.jpg", images.jpeg()))])
    manifest = prepare_catalogue(table, tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)
    dataset_dict = datasets.load_from_disk(str(tmp_path / "out"))
    assert manifest["rows_kept"] == {"train": 1, "validation": 0, "test": 0}
    assert {name: len(dataset_dict[name]) for name in SPLIT_NAMES} == manifest["rows_kept"]
    assert dataset_dict["test"].features == CATALOGUE_FEATURES


def test_bad_arguments_fail_before_any_download(server, tmp_path):
    table = write_jsonl(tmp_path / "catalogue.jsonl", [catalogue_row("P0", server.add("/0.jpg", images.jpeg()))])
    with pytest.raises(ValueError, match="leave rows for training"):
        prepare_catalogue(table, tmp_path / "out", validation_fraction=0.5, test_fraction=0.5, progress=False)
    with pytest.raises(ValueError, match="stratify_by"):
        prepare_catalogue(table, tmp_path / "out", stratify_by="title", progress=False)
    assert server.hits["/0.jpg"] == 0


def test_saving_refuses_a_row_that_is_neither_kept_nor_dropped(tmp_path):
    rows = [{"source_row": 0}, {"source_row": 2}]  # source row 1 went missing
    splits = {"train": [0, 1], "validation": [], "test": []}
    with pytest.raises(ValueError, match="either kept or dropped"):
        save_catalogue(tmp_path / "out", rows, splits, {"rows_in": 3}, dropped=[])
    assert not (tmp_path / "out").exists()
