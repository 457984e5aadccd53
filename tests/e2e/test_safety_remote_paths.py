"""Local image files named by a dataset's rows (`phi3v.data.local_files`), in every script that reads a dataset.

A Hub dataset (here a stubbed `datasets.load_dataset`) whose rows point at a local file (a path-only image cell, a
`file://` URL, an absolute or `../` LLaVA path) is refused before any model loads, with status 1 and a message that
names the split, row, column and path; the file's content appears in no output. A local dataset reads files inside its
own folder, and a `../` path only with `--allow_local_paths`; its report then shows no image read from outside.

The scripts run in this process (`run_script_here`, as `python scripts/<script>` would; each spares the ~14 s of
imports of a new interpreter), with `datasets.load_dataset` answering every Hub id with the test's rows (`fake_hub`)
and every model load (`PreTrainedModel.from_pretrained`) recorded in a sentinel file (`sentinel`).
"""

import base64
import json
import os
import re

import datasets
import pytest
import transformers
from PIL import Image, PngImagePlugin

from ..safety_helpers import output_of, run_script_here


SECRET_MARKER = "PHI3V-PRIVATE-7f3a9c"
HUB_ID = "some-org/innocent-dataset"


def secret_png(path):
    """A private photo whose bytes carry a marker that must never show up in any output."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET_MARKER)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(path, pnginfo=info)
    return path


@pytest.fixture
def secret(tmp_path):
    return secret_png(tmp_path / "private" / "secret.png")


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    """The file every model load appends its class name to, while the test runs; and the app never serves."""
    import gradio

    path = tmp_path / "model-loaded.txt"
    real_from_pretrained = transformers.PreTrainedModel.from_pretrained.__func__

    def recorded_from_pretrained(cls, *args, **kwargs):
        with open(path, "a") as file:
            file.write(cls.__name__ + "\n")
        return real_from_pretrained(cls, *args, **kwargs)

    def serve(*args, **kwargs):  # in this process serving would never return: a refusal that did not happen fails
        raise AssertionError("scripts/app.py started serving")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(recorded_from_pretrained))
    monkeypatch.setattr(gradio.Blocks, "launch", serve)
    return path


def fake_hub(tmp_path, monkeypatch, rows, image_columns):
    """`datasets.load_dataset` answers every Hub id with `rows` in each split (its `image_columns` cast to images,
    a list of them where the value is true); builder names and local paths load as before."""
    real_load_dataset = datasets.load_dataset

    def fake_load_dataset(path, *args, **kwargs):
        if path in ("json", "parquet", "csv") or os.path.exists(path):
            return real_load_dataset(path, *args, **kwargs)
        split = datasets.Dataset.from_list(rows)
        for column, listed in image_columns.items():
            split = split.cast_column(column, datasets.List(datasets.Image()) if listed else datasets.Image())
        return datasets.DatasetDict(dict.fromkeys(("train", "validation", "test"), split))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)


def cell(secret):
    return {"bytes": None, "path": str(secret)}  # what a Hub Parquet file can store: a path without bytes


def conversation(user="<|image_1|>\nWhat is shown?"):
    return [{"role": "user", "content": user}, {"role": "assistant", "content": "A scarf."}]


def assert_refused(result, sentinel, secret, tmp_path, row, column, reference):
    output = output_of(result)
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    assert f"row {row}, column {column!r}: {reference!r}" in result.stderr
    assert re.search(
        r"^error: \d+ image reference\(s\) of .* name files its rows may not read:$", result.stderr, re.MULTILINE
    )
    assert not sentinel.exists(), "a model was loaded before the check"
    assert_secret_nowhere(output, tmp_path, secret)


def assert_secret_nowhere(output, tmp_path, secret):
    encoded = base64.b64encode(secret.read_bytes()).decode()
    assert SECRET_MARKER not in output and encoded not in output
    for file in tmp_path.rglob("*"):
        if file.is_file() and file != secret:
            data = file.read_bytes()
            assert SECRET_MARKER.encode() not in data and encoded.encode() not in data, file


@pytest.mark.parametrize("script", ["sft.py", "evaluate.py", "app.py"])
def test_path_only_image_cells_of_a_hub_dataset_are_refused(
    script, secret, sentinel, tiny_checkpoint, tmp_path, monkeypatch
):
    rows = [{"images": [], "messages": conversation("Hello?")}, {"images": [cell(secret)], "messages": conversation()}]
    fake_hub(tmp_path, monkeypatch, rows, {"images": True})
    out = tmp_path / "out"
    args = {
        "sft.py": [
            "recipes/smoke/sft-full.yaml",
            "--model_name_or_path",
            tiny_checkpoint,
            "--dataset_name",
            HUB_ID,
            "--output_dir",
            out,
            "--report_to",
            "none",
        ],
        "evaluate.py": ["--dataset", HUB_ID, "--model", f"m={tiny_checkpoint}", "--output_dir", out],
        "app.py": ["--model", f"m={tiny_checkpoint}", "--dataset", HUB_ID, "--port", "7999"],
    }[script]
    result = run_script_here(
        script,
        *args,
    )
    assert_refused(result, sentinel, secret, tmp_path, 1, "images", str(secret))
    assert not any(out.rglob("*.safetensors")) and not (out / "report.html").exists()


def test_dpo_pairs_of_a_hub_dataset_naming_a_local_file_are_refused(
    secret, sentinel, tiny_checkpoint, tmp_path, monkeypatch
):
    prompt = [{"role": "user", "content": "<|image_1|>\nWhat is shown?"}]
    pair = {"prompt": prompt, "chosen": conversation()[1:], "rejected": [{"role": "assistant", "content": "A hat."}]}
    fake_hub(tmp_path, monkeypatch, [{"images": [cell(secret)], **pair}], {"images": True})
    out = tmp_path / "dpo"
    result = run_script_here(
        "dpo.py",
        "recipes/smoke/dpo-lora.yaml",
        "--model_name_or_path",
        tiny_checkpoint,
        "--dataset_name",
        HUB_ID,
        "--output_dir",
        out,
        "--report_to",
        "none",
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "images", str(secret))
    assert not any(out.rglob("*.safetensors"))


def test_make_preferences_refuses_a_hub_catalogue_naming_a_local_file(secret, sentinel, tmp_path, monkeypatch):
    product = {"product_code": "P0", "title": "Scarf", "category3_code": "SCARVES", "full_price": 590.0}
    fake_hub(tmp_path, monkeypatch, [{**product, "image": cell(secret)}], {"image": False})
    out = tmp_path / "pairs"
    result = run_script_here("make_preferences.py", "--dataset", HUB_ID, "--output", out, "--splits", "train")
    assert_refused(result, sentinel, secret, tmp_path, 0, "image", str(secret))
    assert not (out / "dataset_dict.json").exists()


def test_reproduce_refuses_a_hub_eval_set_naming_a_local_file(secret, sentinel, tmp_path, monkeypatch):
    row = {"image": cell(secret), "query": {"en": "What is the date?"}, "answers": ["1999"]}
    fake_hub(tmp_path, monkeypatch, [row], {"image": False})
    report_dir = tmp_path / "report"
    result = run_script_here(
        "reproduce.py",
        "recipes/cookbook/docvqa/sft-lora.yaml",
        "--report_dir",
        report_dir,
        "--eval_dataset",
        HUB_ID,
        "--eval_split",
        "train",
        "--output_dir",
        tmp_path / "model",
        "--use_cpu",
        "true",
        "--bf16",
        "false",
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "image", str(secret))
    assert "+ " not in result.stdout  # no step (sft.py --check_only, evaluate.py) was started
    assert not (report_dir / "eval_set").exists()


@pytest.mark.parametrize("form", ["absolute", "file_url", "parent"])
def test_llava_rows_of_a_hub_dataset_never_read_local_files(
    form, secret, sentinel, tiny_checkpoint, tmp_path, monkeypatch
):
    reference = {"absolute": str(secret), "file_url": secret.as_uri(), "parent": "../../private/secret.png"}[form]
    turns = [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "A scarf."}]
    fake_hub(tmp_path, monkeypatch, [{"id": "r0", "image": reference, "conversations": turns}], {})
    out = tmp_path / "eval"
    result = run_script_here(
        "evaluate.py", "--dataset", HUB_ID, "--model", f"m={tiny_checkpoint}", "--output_dir", out
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "image", reference)
    assert "Hub dataset" in result.stderr


def llava_dataset(tmp_path, reference):
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    turns = [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "A scarf."}]
    (folder / "llava.json").write_text(json.dumps([{"id": "r0", "image": reference, "conversations": turns}]))
    return folder / "llava.json"


def test_a_local_dataset_reads_outside_its_folder_only_when_allowed(secret, sentinel, tiny_checkpoint, tmp_path):
    dataset = llava_dataset(tmp_path, "../../private/secret.png")
    common = ["--dataset", dataset, "--split", "train", "--model", f"m={tiny_checkpoint}", "--no_blank_control"]
    common += ["--max_new_tokens", "2", "--device", "cpu", "--dtype", "float32"]
    refused = run_script_here("evaluate.py", *common, "--output_dir", tmp_path / "strict")
    assert_refused(refused, sentinel, secret, tmp_path, 0, "image", "../../private/secret.png")
    assert "--allow_local_paths" in refused.stderr and "outside the dataset's folder" in refused.stderr

    allowed = run_script_here("evaluate.py", *common, "--output_dir", tmp_path / "allowed", "--allow_local_paths")
    assert allowed.returncode == 0, output_of(allowed)[-3000:]
    assert sentinel.exists(), "the model loads once the user opted in"
    report = (tmp_path / "allowed" / "report.html").read_text()
    # The file was read (the model saw it) but is not the dataset's own: the report shows no picture of it.
    assert "data:image/jpeg;base64" not in report.split("<h2>Plots</h2>")[-1] and "(no image)" in report
    assert_secret_nowhere(output_of(allowed), tmp_path, secret)


def test_sft_refuses_a_local_dataset_naming_a_parent_path(secret, sentinel, tiny_checkpoint, tmp_path):
    dataset = llava_dataset(tmp_path, "../../private/secret.png")
    result = run_script_here(
        "sft.py",
        "recipes/smoke/sft-full.yaml",
        "--model_name_or_path",
        tiny_checkpoint,
        "--dataset_name",
        dataset,
        "--dataset_train_split",
        "train",
        "--eval_strategy",
        "no",
        "--output_dir",
        tmp_path / "out",
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "image", "../../private/secret.png")
