"""Every script checks its output path before any work: a file where a directory is expected, an output on top of an
input, and `--overwrite` into a directory this project did not write (or wrote for something else) are refused with
the path named, and nothing the user had changes."""

import json

import pytest

from phi3v.outputs import MARKER_NAME

from ..safety_helpers import output_of, run_script_here, tree_digest


def assert_refused(result, *named):
    message = output_of(result)
    assert result.returncode != 0, message[-3000:]
    for text in named:
        assert str(text) in message, (text, message[-3000:])
    assert "Loading" not in result.stdout  # refused before any model loads


@pytest.fixture
def user_dir(tmp_path):
    path = tmp_path / "my-notes"
    path.mkdir()
    (path / "todo.txt").write_text("mine")
    return path


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("mine")
    return path


def test_make_preferences_never_replaces_its_catalogue_or_a_user_directory(synthetic_catalogue, user_dir):
    before = tree_digest(synthetic_catalogue)
    same = run_script_here(
        "make_preferences.py", "--dataset", synthetic_catalogue, "--output", synthetic_catalogue, "--overwrite"
    )
    assert_refused(same, f"Output {synthetic_catalogue} is the input {synthetic_catalogue}")
    assert tree_digest(synthetic_catalogue) == before

    before = tree_digest(user_dir)
    foreign = run_script_here(
        "make_preferences.py", "--dataset", synthetic_catalogue, "--output", user_dir, "--overwrite"
    )
    assert_refused(foreign, user_dir, "was not written by this project", "refusing to delete")
    assert tree_digest(user_dir) == before


def test_overwrite_replaces_only_the_same_kind_of_project_output(synthetic_catalogue, tmp_path):
    pairs = tmp_path / "pairs"
    made = run_script_here("make_preferences.py", "--dataset", synthetic_catalogue, "--output", pairs)
    assert made.returncode == 0, output_of(made)[-3000:]
    assert json.loads((pairs / MARKER_NAME).read_text())["kind"] == "preferences"
    before = tree_digest(pairs)
    again = run_script_here("make_preferences.py", "--dataset", synthetic_catalogue, "--output", pairs)
    assert_refused(again, f"Output directory {pairs} is not empty; pass --overwrite")
    catalogue = run_script_here(
        "make_synthetic_catalogue.py", "--output_dir", pairs, "--overwrite", "--num_products", "12"
    )
    assert_refused(catalogue, pairs, "holds this project's preferences output, not catalogue output")
    assert tree_digest(pairs) == before


def test_evaluate_checks_its_output_dir_before_loading_a_model(synthetic_catalogue, tiny_checkpoint, user_file):
    before = tree_digest(user_file)
    common = ["--dataset", synthetic_catalogue, "--model", f"tiny={tiny_checkpoint}", "--limit", "2"]
    assert_refused(
        run_script_here("evaluate.py", *common, "--output_dir", user_file, "--overwrite"), user_file, "is a file"
    )
    assert tree_digest(user_file) == before
    before = tree_digest(tiny_checkpoint)
    on_model = run_script_here("evaluate.py", *common, "--output_dir", tiny_checkpoint / "eval")
    assert_refused(on_model, f"overlaps the input {tiny_checkpoint}")
    assert tree_digest(tiny_checkpoint) == before


def test_merge_lora_make_tiny_model_and_prepare_dataset_refuse_what_they_did_not_write(
    tiny_checkpoint, user_dir, user_file, tmp_path
):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": "LORA", "base_model_name_or_path": str(tiny_checkpoint), "target_modules": ["o_proj"]}
        )
    )
    before = tree_digest(user_dir)
    merged = run_script_here("merge_lora.py", "--adapter", adapter, "--output_dir", user_dir)
    assert_refused(merged, user_dir, "was not written by this project")
    assert tree_digest(user_dir) == before

    before = tree_digest(user_file)
    assert_refused(run_script_here("make_tiny_model.py", "--output", user_file), user_file, "is a file")
    assert tree_digest(user_file) == before

    table_dir = tmp_path / "mine"
    table_dir.mkdir()
    table = table_dir / "catalogue.csv"
    table.write_text("product_code,title,imageurl\n")
    before = tree_digest(table_dir)
    prepared = run_script_here("prepare_dataset.py", "--source", table, "--output_dir", table_dir, "--overwrite")
    assert_refused(prepared, f"Output {table_dir} overlaps the input {table}")
    assert tree_digest(table_dir) == before


def test_sft_and_dpo_never_resume_or_save_over_each_others_run(synthetic_catalogue, tiny_checkpoint, tmp_path):
    """A DPO output is a training run too, but of another script: sft.py refuses it (implicitly or through
    --resume_from_checkpoint), and so does dpo.py an SFT run; --overwrite_output_dir true is the way to replace it."""
    from phi3v.outputs import mark_output_dir

    dpo_run = mark_output_dir(tmp_path / "dpo-run", "training", "scripts/dpo.py")
    (dpo_run / "run_config.json").write_text("{}")
    checkpoint = dpo_run / "checkpoint-10"
    checkpoint.mkdir()
    for name in ("trainer_state.json", "adapter_model.safetensors", "adapter_config.json"):
        (checkpoint / name).write_text('{"global_step": 10}')
    before = tree_digest(dpo_run)
    sft_args = ["recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint]
    sft_args += ["--dataset_name", synthetic_catalogue, "--output_dir", dpo_run]
    assert_refused(run_script_here("sft.py", *sft_args), "holds a run of scripts/dpo.py, not of scripts/sft.py")
    other_dir = ["--output_dir", tmp_path / "elsewhere", "--resume_from_checkpoint", checkpoint]
    assert_refused(run_script_here("sft.py", *sft_args, *other_dir), "is a checkpoint of scripts/dpo.py")
    assert tree_digest(dpo_run) == before

    sft_run = mark_output_dir(tmp_path / "sft-run", "training", "scripts/sft.py")
    (sft_run / "run_config.json").write_text("{}")
    dpo_args = ["recipes/smoke/dpo-lora.yaml", "--model_name_or_path", tiny_checkpoint, "--output_dir", sft_run]
    dpo_args += ["--dataset_name", synthetic_catalogue]
    assert_refused(run_script_here("dpo.py", *dpo_args), "holds a run of scripts/sft.py, not of scripts/dpo.py")
