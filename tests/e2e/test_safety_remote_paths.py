"""Local image files named by a dataset's rows (`phi3v.data.local_files`), in every script that reads a dataset.

A Hub dataset (here a stubbed `datasets.load_dataset`) whose rows point at a local file (a path-only image cell, a
`file://` URL, an absolute or `../` LLaVA path) is refused before any model loads, with status 1 and a message that
names the split, row, column and path; the file's content appears in no output. A local dataset reads files inside its
own folder, and a `../` path only with `--allow_local_paths`; its report then shows no image read from outside.
"""

import base64
import json
import re

import pytest
from PIL import Image, PngImagePlugin

from ..safety_helpers import output_of, run_script


SECRET_MARKER = "PHI3V-PRIVATE-7f3a9c"
HUB_ID = "some-org/innocent-dataset"

# Runs a script with `datasets.load_dataset` answering every Hub id with the rows of PHI3V_FAKE_HUB (JSON), and every
# model load (`PreTrainedModel.from_pretrained`) recorded in PHI3V_MODEL_SENTINEL.
LAUNCHER = """
import json, os, runpy, sys
import datasets, transformers
spec = json.load(open(os.environ["PHI3V_FAKE_HUB"])) if "PHI3V_FAKE_HUB" in os.environ else None
real_load_dataset = datasets.load_dataset

def fake_load_dataset(path, *args, **kwargs):
    if spec is None or path in ("json", "parquet", "csv") or os.path.exists(path):
        return real_load_dataset(path, *args, **kwargs)
    split = datasets.Dataset.from_list(spec["rows"])
    for column, listed in spec["image_columns"].items():
        split = split.cast_column(column, datasets.List(datasets.Image()) if listed else datasets.Image())
    return datasets.DatasetDict({name: split for name in ("train", "validation", "test")})

datasets.load_dataset = fake_load_dataset
real_from_pretrained = transformers.PreTrainedModel.from_pretrained.__func__

def recorded_from_pretrained(cls, *args, **kwargs):
    with open(os.environ["PHI3V_MODEL_SENTINEL"], "a") as file:
        file.write(cls.__name__ + "\\n")
    return real_from_pretrained(cls, *args, **kwargs)

transformers.PreTrainedModel.from_pretrained = classmethod(recorded_from_pretrained)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


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
    path = tmp_path / "model-loaded.txt"
    monkeypatch.setenv("PHI3V_MODEL_SENTINEL", str(path))
    return path


def fake_hub(tmp_path, monkeypatch, rows, image_columns):
    spec = tmp_path / "hub.json"
    spec.write_text(json.dumps({"rows": rows, "image_columns": image_columns}))
    monkeypatch.setenv("PHI3V_FAKE_HUB", str(spec))


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
    result = run_script(script, *args, launcher=LAUNCHER, timeout=300)
    assert_refused(result, sentinel, secret, tmp_path, 1, "images", str(secret))
    assert not any(out.rglob("*.safetensors")) and not (out / "report.html").exists()


def test_dpo_pairs_of_a_hub_dataset_naming_a_local_file_are_refused(
    secret, sentinel, tiny_checkpoint, tmp_path, monkeypatch
):
    prompt = [{"role": "user", "content": "<|image_1|>\nWhat is shown?"}]
    pair = {"prompt": prompt, "chosen": conversation()[1:], "rejected": [{"role": "assistant", "content": "A hat."}]}
    fake_hub(tmp_path, monkeypatch, [{"images": [cell(secret)], **pair}], {"images": True})
    out = tmp_path / "dpo"
    result = run_script(
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
        launcher=LAUNCHER,
        timeout=300,
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "images", str(secret))
    assert not any(out.rglob("*.safetensors"))


def test_make_preferences_refuses_a_hub_catalogue_naming_a_local_file(secret, sentinel, tmp_path, monkeypatch):
    product = {"product_code": "P0", "title": "Scarf", "category3_code": "SCARVES", "full_price": 590.0}
    fake_hub(tmp_path, monkeypatch, [{**product, "image": cell(secret)}], {"image": False})
    out = tmp_path / "pairs"
    result = run_script(
        "make_preferences.py", "--dataset", HUB_ID, "--output", out, "--splits", "train", launcher=LAUNCHER
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "image", str(secret))
    assert not (out / "dataset_dict.json").exists()


def test_reproduce_refuses_a_hub_eval_set_naming_a_local_file(secret, sentinel, tmp_path, monkeypatch):
    row = {"image": cell(secret), "query": {"en": "What is the date?"}, "answers": ["1999"]}
    fake_hub(tmp_path, monkeypatch, [row], {"image": False})
    report_dir = tmp_path / "report"
    result = run_script(
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
        launcher=LAUNCHER,
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
    result = run_script(
        "evaluate.py", "--dataset", HUB_ID, "--model", f"m={tiny_checkpoint}", "--output_dir", out, launcher=LAUNCHER
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
    refused = run_script("evaluate.py", *common, "--output_dir", tmp_path / "strict", launcher=LAUNCHER)
    assert_refused(refused, sentinel, secret, tmp_path, 0, "image", "../../private/secret.png")
    assert "--allow_local_paths" in refused.stderr and "outside the dataset's folder" in refused.stderr

    allowed = run_script(
        "evaluate.py", *common, "--output_dir", tmp_path / "allowed", "--allow_local_paths", launcher=LAUNCHER
    )
    assert allowed.returncode == 0, output_of(allowed)[-3000:]
    assert sentinel.exists(), "the model loads once the user opted in"
    report = (tmp_path / "allowed" / "report.html").read_text()
    # The file was read (the model saw it) but is not the dataset's own: the report shows no picture of it.
    assert "data:image/jpeg;base64" not in report.split("<h2>Plots</h2>")[-1] and "(no image)" in report
    assert_secret_nowhere(output_of(allowed), tmp_path, secret)


def test_sft_refuses_a_local_dataset_naming_a_parent_path(secret, sentinel, tiny_checkpoint, tmp_path):
    dataset = llava_dataset(tmp_path, "../../private/secret.png")
    result = run_script(
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
        launcher=LAUNCHER,
    )
    assert_refused(result, sentinel, secret, tmp_path, 0, "image", "../../private/secret.png")
