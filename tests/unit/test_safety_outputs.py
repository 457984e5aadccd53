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
