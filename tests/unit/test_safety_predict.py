"""`scripts/predict.py` with unreadable image files: each 0-byte, truncated or corrupt file is named on standard error
and written with its `error`, the others are still answered; a folder with nothing readable fails before the model
loads. Also: an output file that exists is not replaced without `--overwrite`."""

import json

import pytest

from .. import data_helpers_images as images
from ..evaluation_helpers import make_lora_adapter
from ..safety_helpers import output_of, run_script_here


def write_bad_images(folder):
    folder.mkdir()
    (folder / "b_empty.jpg").write_bytes(b"")
    (folder / "c_truncated.jpg").write_bytes(images.truncated("JPEG"))
    (folder / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png" * 10)
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def adapter_with_moved_base(tiny_checkpoint, tmp_path_factory):
    """A LoRA adapter whose recorded base (adapter_config.json) no longer exists; the base is `tiny_checkpoint`."""
    adapter = make_lora_adapter(tiny_checkpoint, tmp_path_factory.mktemp("adapter") / "lora")
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tiny_checkpoint.parent / "moved-away" / "tiny-phi3v")
    config_path.write_text(json.dumps(config))
    return adapter


def test_unreadable_files_are_skipped_and_reported_the_rest_answered(
    adapter_with_moved_base, tiny_checkpoint, tmp_path
):
    folder = tmp_path / "photos"
    bad = write_bad_images(folder)
    (folder / "a_good.jpg").write_bytes(images.jpeg(size=(60, 40)))
    output = tmp_path / "predictions.jsonl"
    model = ["--model", adapter_with_moved_base, "--base_model", tiny_checkpoint, "--max_new_tokens", "4"]
    result = run_script_here("predict.py", *model, folder, "--format", "jsonl", "--output", output)
    assert result.returncode == 0, output_of(result)[-3000:]
    for path in bad:
        assert f"Skipping unreadable image {path}:" in result.stderr
    records = {json.loads(line)["image"]: json.loads(line) for line in output.read_text().splitlines()}
    assert list(records) == [str(folder / "a_good.jpg"), *map(str, bad)]
    assert records[str(folder / "a_good.jpg")]["error"] is None
    assert isinstance(records[str(folder / "a_good.jpg")]["answer"], str)
    assert all(records[str(path)]["error"] and records[str(path)]["answer"] is None for path in bad)
    assert "cannot identify image file" in records[str(folder / "b_empty.jpg")]["error"]


def test_nothing_readable_fails_before_the_model_loads(tmp_path):
    bad = write_bad_images(tmp_path / "photos")
    not_a_model = tmp_path / "model"  # would fail to load: the refusal must come first
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{}")
    result = run_script_here("predict.py", "--model", not_a_model, tmp_path / "photos")
    assert result.returncode == 1
    assert "None of the 3 image file(s) could be read; nothing to predict." in result.stderr
    assert all(str(path) in result.stderr for path in bad)


def test_an_existing_output_file_is_kept(tiny_checkpoint, tmp_path):
    (tmp_path / "a.jpg").write_bytes(images.jpeg())
    output = tmp_path / "predictions.csv"
    output.write_text("my earlier predictions")
    result = run_script_here(
        "predict.py", "--model", tiny_checkpoint, tmp_path / "a.jpg", "--format", "csv", "--output", output
    )
    assert result.returncode != 0 and f"Output file {output} exists; pass --overwrite" in result.stderr
    assert output.read_text() == "my earlier predictions"
