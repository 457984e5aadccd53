"""`scripts/predict.py`: image files or folders in, one parsed answer per image out, from any model form."""

import csv
import io
import json
import runpy
import sys

import numpy as np
import pytest
from PIL import Image

from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import load_for_inference
from phi3v.inference.prediction import ImageFiles, find_images, format_table, write_records
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks.catalogue import prompt_messages

from ..evaluation_helpers import REPO_ROOT, make_lora_adapter, one_torch_thread


FIELDS = ["image", "title", "category3_code", "full_price", "parsed", "answer", "error"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """A folder with three photos (JPEG, PNG, and an RGBA PNG) and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for name, size in [("a_bag.jpg", (120, 90)), ("b_scarf.png", (80, 160)), ("c_hat.png", (100, 100))]:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        (image.convert("RGBA") if name == "c_hat.png" else image).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def adapter_dir(tiny_checkpoint, tmp_path_factory):
    return make_lora_adapter(tiny_checkpoint, tmp_path_factory.mktemp("adapter") / "lora")


def run_predict(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["predict.py", *args])
    runpy.run_path(str(REPO_ROOT / "scripts" / "predict.py"), run_name="__main__")


def test_find_images_expands_folders_and_keeps_files(photo_dir, tmp_path):
    paths = find_images([photo_dir, photo_dir / "a_bag.jpg"])
    assert [p.name for p in paths] == ["a_bag.jpg", "b_scarf.png", "c_hat.png", "a_bag.jpg"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_images([photo_dir / "missing.jpg"])
    with pytest.raises(FileNotFoundError, match="No image files"):
        find_images([tmp_path])


def test_image_files_open_lazily(photo_dir):
    files = ImageFiles(find_images([photo_dir]))
    assert len(files) == 3
    assert [sample[0].size for sample in files[0:2]] == [(120, 90), (80, 160)]
    assert files[2][0].mode == "RGBA"


@pytest.mark.parametrize("model_form", ["base", "adapter"])
def test_jsonl_has_one_parsed_answer_per_image(
    model_form, photo_dir, tiny_checkpoint, adapter_dir, tmp_path, monkeypatch
):
    model_path = tiny_checkpoint if model_form == "base" else adapter_dir
    output = tmp_path / "out" / "predictions.jsonl"
    run_predict(monkeypatch, "--model", str(model_path), str(photo_dir), "--format", "jsonl", "--output", str(output))
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["image"] for r in records] == [str(p) for p in find_images([photo_dir])]
    assert all(list(record) == FIELDS for record in records)

    # The same answers as generating directly from the images.
    model, processor = load_for_inference(model_path)
    images = ImageFiles(find_images([photo_dir]))
    prompts = [build_prompt(processor, prompt_messages())] * 3
    expected = generate_answers(model, processor, prompts, images, show_progress=False)
    assert [r["answer"] for r in records] == expected


def test_csv_to_stdout(photo_dir, tiny_checkpoint, monkeypatch, capsys):
    run_predict(monkeypatch, "--model", str(tiny_checkpoint), str(photo_dir / "a_bag.jpg"), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["image"] == str(photo_dir / "a_bag.jpg")


def test_table_on_the_terminal(photo_dir, tiny_checkpoint, monkeypatch, capsys):
    run_predict(monkeypatch, "--model", str(tiny_checkpoint), str(photo_dir), "--batch_size", "2")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["image", "title", "category3_code", "full_price"]
    assert len(lines) == 2 + 3


def test_format_table_and_writers():
    records = [
        {
            "image": "x.jpg",
            "title": "Red Scarf",
            "category3_code": "SCARVES",
            "full_price": 1290.0,
            "parsed": True,
            "answer": ".",
            "error": None,
        },
        {
            "image": "y.jpg",
            "title": None,
            "category3_code": None,
            "full_price": None,
            "parsed": False,
            "answer": "??",
            "error": None,
        },
    ]
    table = format_table(records).splitlines()
    assert table[2].split() == ["x.jpg", "Red", "Scarf", "SCARVES", "1,290.00"]
    assert table[3].split() == ["y.jpg", "-", "-", "-"]
    buffer = io.StringIO()
    write_records(records, buffer, "jsonl")
    assert [json.loads(line)["full_price"] for line in buffer.getvalue().splitlines()] == [1290.0, None]
    answers_only = format_table([{"image": "z.jpg", "answer": "A red scarf."}]).splitlines()
    assert answers_only[0].split() == ["image", "answer"] and answers_only[2].split() == [
        "z.jpg",
        "A",
        "red",
        "scarf.",
    ]
    with pytest.raises(ValueError, match="jsonl' or 'csv"):
        write_records(records, io.StringIO(), "xml")
