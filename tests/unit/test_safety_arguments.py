"""Cheap argument checks come first: a zero or negative `--limit`/`--batch_size` and a dataset path that does not
exist are refused, naming the value, before any model loads."""

import pytest

from ..safety_helpers import output_of, run_script_here


@pytest.mark.parametrize(
    ("script", "flag", "value"),
    [("evaluate.py", "--limit", "-5"), ("make_preferences.py", "--batch_size", "0")],
)
def test_non_positive_counts_are_refused_by_the_parser(script, flag, value, synthetic_catalogue, tmp_path):
    required = {
        "evaluate.py": ["--dataset", synthetic_catalogue, "--model", "m=x", "--output_dir", tmp_path / "out"],
        "make_preferences.py": ["--dataset", synthetic_catalogue, "--output", tmp_path / "out"],
    }[script]
    result = run_script_here(script, *required, flag, value)
    assert result.returncode == 2
    assert f"argument {flag}: must be at least 1, got {int(value)}" in result.stderr


def test_a_dataset_that_does_not_exist_is_named_before_the_model_loads(tiny_checkpoint, tmp_path):
    missing = tmp_path / "data" / "synthetc"
    out = tmp_path / "out"
    evaluate = run_script_here(
        "evaluate.py", "--dataset", missing, "--model", f"m={tiny_checkpoint}", "--output_dir", out
    )
    sft = run_script_here(
        "sft.py",
        "recipes/smoke/sft-full.yaml",
        "--model_name_or_path",
        tiny_checkpoint,
        "--dataset_name",
        missing,
        "--output_dir",
        out,
    )
    for result in (evaluate, sft):
        assert result.returncode != 0
        assert f"Dataset {missing} does not exist ({tmp_path} exists, but not data/synthetc inside it)" in output_of(
            result
        )
        assert "Loading" not in result.stdout and not out.exists()
