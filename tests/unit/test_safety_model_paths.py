"""A missing or moved model path is reported as such by every script that loads a model (not as a malformed Hub
repo id), an adapter whose base moved says where that base came from and to pass `--base_model`, and
`merge_lora.py` on a full checkpoint says there is nothing to merge; all before any model loads."""

import json

import pytest

from .. import data_helpers_images as images
from ..safety_helpers import output_of, run_script_here


def command(script, model, catalogue, tmp_path):
    out = tmp_path / "out"
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(images.jpeg())
    training = ["--dataset_name", catalogue, "--output_dir", out, "--model_name_or_path", model]
    return {
        "predict.py": ["--model", model, photo],
        "evaluate.py": ["--dataset", catalogue, "--model", f"m={model}", "--output_dir", out],
        "merge_lora.py": ["--adapter", model, "--output_dir", out],
        "make_preferences.py": ["--dataset", catalogue, "--model", model, "--output", out],
        "sft.py": ["recipes/smoke/sft-full.yaml", *training],
        "dpo.py": ["recipes/smoke/dpo-lora.yaml", *training],
        "app.py": ["--model", model],
    }[script]


SCRIPTS = ["predict.py", "evaluate.py", "merge_lora.py", "make_preferences.py", "sft.py", "dpo.py", "app.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_missing_model_path_is_named(script, synthetic_catalogue, tmp_path):
    missing = tmp_path / "outputs" / "phi3v-typo"
    result = run_script_here(script, *command(script, missing, synthetic_catalogue, tmp_path))
    message = output_of(result)
    assert result.returncode != 0
    assert f"{missing} does not exist" in message, message[-2000:]
    assert "Repo id must be" not in message and not (tmp_path / "out").exists()


def hub_without(repo_ids: set[str], present: set[str] = frozenset()):
    """A stand-in for transformers' `cached_file`: `repo_ids` are not on the Hub; of the others, only the files in
    `present` exist (all when empty)."""

    def cached_file(repo_id, filename, **kwargs):
        if repo_id in repo_ids:
            raise OSError(f"{repo_id} is not a local folder and is not a valid model identifier listed on the Hub")
        if present and filename not in present:
            raise OSError(f"{repo_id} does not appear to have a file named {filename}.")
        return f"/cache/{repo_id}/{filename}"

    return cached_file


@pytest.mark.parametrize("script", [script for script in SCRIPTS if script != "merge_lora.py"])
def test_a_hub_id_the_hub_does_not_give_is_one_line_before_anything_loads(
    script, synthetic_catalogue, tmp_path, monkeypatch
):
    monkeypatch.setattr("phi3v.inference.loading.cached_file", hub_without({"someone/phi3v-typo"}))
    result = run_script_here(script, *command(script, "someone/phi3v-typo", synthetic_catalogue, tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    expected = (
        "error: Model someone/phi3v-typo is not a local path, and the Hub did not give it: someone/phi3v-typo is "
        "not a local folder and is not a valid model identifier listed on the Hub"
    )
    assert result.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "out").exists()


def test_a_hub_adapter_repository_passes_the_check(monkeypatch):
    from phi3v.inference.loading import check_model_path

    monkeypatch.setattr("phi3v.inference.loading.cached_file", hub_without(set(), present={"adapter_config.json"}))
    check_model_path("someone/phi3v-adapter")  # no config.json, but an adapter: from_pretrained takes it


def test_an_adapter_whose_base_moved_names_the_base_and_the_way_out(tiny_checkpoint, synthetic_catalogue, tmp_path):
    adapter = tmp_path / "sft-adapter"
    adapter.mkdir()
    moved = tmp_path / "models" / "tiny-phi3v"
    config = {"peft_type": "LORA", "base_model_name_or_path": str(moved), "target_modules": ["o_proj"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    result = run_script_here("dpo.py", *command("dpo.py", adapter, synthetic_catalogue, tmp_path))
    message = output_of(result)
    assert result.returncode != 0
    assert f"is a LoRA adapter whose base model {moved}" in message
    assert f"{adapter / 'adapter_config.json'}) does not exist; pass --base_model" in message


def test_merge_lora_on_a_full_checkpoint_says_there_is_nothing_to_merge(tiny_checkpoint, tmp_path):
    result = run_script_here("merge_lora.py", "--adapter", tiny_checkpoint, "--output_dir", tmp_path / "merged")
    assert result.returncode != 0
    assert f"{tiny_checkpoint} is a full checkpoint, not a LoRA adapter" in output_of(result)
    assert not (tmp_path / "merged").exists()
