"""The form of a user's mistake: one `error:` line (plus the rows it found) on standard error, no traceback, exit status
2 for an argument (value, choice, path, name, recipe key) and 1 for data; `PHI3V_DEBUG=1` shows the traceback, and
an internal error keeps it (`phi3v.errors.run_script`). Names and closed choices are checked before any model loads.

Most cases run the script in this process (`runpy`, as `python scripts/<script>` would), which is fast; two run it as
a subprocess to see exactly what a user's terminal shows.
"""

import json
import runpy
import sys

import pytest

from phi3v.errors import DataError, UsageError, run_script

from ..safety_helpers import REPO_ROOT


def run_in_process(script, *args, capsys, monkeypatch):
    """(exit status, stderr) of `python scripts/<script> args...`, run here."""
    monkeypatch.setattr(sys, "argv", [f"scripts/{script}", *map(str, args)])
    monkeypatch.chdir(REPO_ROOT)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / script), run_name="__main__")
    return exit_info.value.code, capsys.readouterr().err


def assert_one_error_line(status, stderr, expected_status, message):
    assert status == expected_status, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    assert message in stderr, stderr[-3000:]


@pytest.fixture
def in_process(capsys, monkeypatch):
    monkeypatch.delenv("PHI3V_DEBUG", raising=False)
    return lambda script, *args: run_in_process(script, *args, capsys=capsys, monkeypatch=monkeypatch)


def test_run_script_prints_user_errors_and_keeps_internal_tracebacks(capsys, monkeypatch):
    monkeypatch.delenv("PHI3V_DEBUG", raising=False)

    def fail(error):
        raise error

    for error, status in ((UsageError("bad --flag"), 2), (DataError("row 3: no answer"), 1)):
        with pytest.raises(SystemExit) as exit_info:
            run_script(lambda error=error: fail(error))
        assert exit_info.value.code == status
        assert capsys.readouterr().err == f"error: {error}\n"
    with pytest.raises(KeyError):  # a bug: its traceback is kept
        run_script(lambda: fail(KeyError("internal")))
    monkeypatch.setenv("PHI3V_DEBUG", "1")
    with pytest.raises(UsageError):
        run_script(lambda: fail(UsageError("bad --flag")))


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("global median", "a baseline"),
        ("True-Category Median", "a baseline"),
        ("a (grey image)", "the blank-image control of 'a'"),
    ],
)
def test_evaluate_refuses_model_names_that_collide(name, taken, in_process, tiny_checkpoint, tmp_path):
    models = [f"{name}={tiny_checkpoint}", f"a={tiny_checkpoint}"]
    status, stderr = in_process(
        "evaluate.py", "--dataset", "x/y", "--model", *models, "--output_dir", tmp_path / "out"
    )
    assert_one_error_line(status, stderr, 2, f"--model name {name!r} is {taken}")
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_two_models_of_one_name(in_process, tiny_checkpoint, tmp_path):
    status, stderr = in_process(
        "evaluate.py",
        "--dataset",
        "x/y",
        "--model",
        f"m={tiny_checkpoint}",
        f"m={tiny_checkpoint}",
        "--output_dir",
        tmp_path / "out",
    )
    assert_one_error_line(status, stderr, 2, "Bad or duplicate --model 'm=")


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("evaluate.py", ["--task", "hateful-memes"], "argument --task: invalid choice: 'hateful-memes'"),
        ("evaluate.py", ["--device", "gpu0"], "argument --device: not a device: 'gpu0'"),
        ("evaluate.py", ["--attn_implementation", "flash"], "argument --attn_implementation: invalid choice"),
        ("predict.py", ["--dtype", "bf16"], "argument --dtype: invalid choice: 'bf16'"),
        ("app.py", ["--batch_size", "0"], "argument --batch_size: must be at least 1, got 0"),
        ("app.py", ["--max_megapixels", "-1"], "argument --max_megapixels: must be at least 1, got -1"),
        ("app.py", ["--port", "70000"], "argument --port: a port is at most 65535, got 70000"),
        ("reproduce.py", ["--eval_limit", "0"], "argument --eval_limit: must be at least 1, got 0"),
    ],
)
def test_closed_choices_and_positive_numbers_are_checked_by_the_parser(script, args, message, in_process, tmp_path):
    required = {
        "evaluate.py": ["--dataset", "x/y", "--model", "m=x", "--output_dir", tmp_path / "out"],
        "predict.py": ["--model", "x", "photo.jpg"],
        "app.py": ["--model", "m=x"],
        "reproduce.py": ["recipes/cookbook/docvqa/sft-lora.yaml"],
    }[script]
    status, stderr = in_process(script, *required, *args)
    assert_one_error_line(status, stderr, 2, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "hateful-memes"], "error: task 'hateful-memes' is not one of ['catalogue', 'conversation', "),
        (["--dataset_format", "llava-json"], "error: dataset_format 'llava-json' is not one of ['auto', "),
        (["--num_crops", "0"], "error: num_crops must be at least 1, got 0."),
        (["--eval_predictions", "-1"], "error: eval_predictions must be at least 0, got -1."),
        (
            ["--not_a_flag", "1"],
            "error: Some specified arguments are not used by the HfArgumentParser: ['--not_a_flag'",
        ),
    ],
)
def test_recipe_values_and_unknown_keys_are_argument_errors(args, message, in_process, tmp_path):
    status, stderr = in_process("sft.py", "recipes/smoke/sft-full.yaml", *args, "--output_dir", tmp_path / "out")
    assert_one_error_line(status, stderr, 2, message)
    assert not (tmp_path / "out").exists()


def test_an_unknown_key_in_a_recipe_file_is_an_argument_error(in_process, tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text((REPO_ROOT / "recipes" / "smoke" / "sft-full.yaml").read_text() + "\nlearning_rat: 1.0e-4\n")
    status, stderr = in_process("sft.py", recipe, "--output_dir", tmp_path / "out")
    assert_one_error_line(status, stderr, 2, "Unknown arguments from config file: ['--learning_rat', '0.0001']")
    status, stderr = in_process("dpo.py", tmp_path / "missing.yaml")
    assert_one_error_line(status, stderr, 2, f"error: Recipe {tmp_path / 'missing.yaml'} does not exist.")


def test_a_missing_path_and_an_occupied_output_are_argument_errors(
    in_process, tiny_checkpoint, synthetic_catalogue, tmp_path
):
    missing = tmp_path / "data" / "nope"
    status, stderr = in_process(
        "evaluate.py", "--dataset", missing, "--model", f"m={tiny_checkpoint}", "--output_dir", tmp_path / "out"
    )
    assert_one_error_line(status, stderr, 2, f"error: Dataset {missing} does not exist")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    taken = tmp_path / "taken" / "notes.txt"
    status, stderr = in_process("make_preferences.py", "--dataset", synthetic_catalogue, "--output", taken)
    assert_one_error_line(status, stderr, 2, f"error: Output directory {taken} exists and is a file")
    assert taken.read_text() == "mine"


def test_a_bad_row_is_a_data_error_with_its_row(in_process, tiny_checkpoint, tmp_path):
    rows = [
        {
            "id": "ok",
            "image": "a.png",
            "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}],
        },
        {
            "id": "two-tags",
            "image": "a.png",
            "conversations": [{"from": "human", "value": "<image><image>\nQ"}, {"from": "gpt", "value": "A"}],
        },
    ]
    (tmp_path / "data").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "data" / "a.png")
    (tmp_path / "data" / "llava.json").write_text(json.dumps(rows))
    status, stderr = in_process(
        "evaluate.py",
        "--dataset",
        tmp_path / "data" / "llava.json",
        "--split",
        "train[1:]",  # an evaluation skips a bad row among others (tests/unit/test_safety_rows.py); here none is left
        "--model",
        f"m={tiny_checkpoint}",
        "--output_dir",
        tmp_path / "out",
    )
    assert_one_error_line(
        status, stderr, 1, "split 'train[1:]', row 0, field 'conversations': 2 `<image>` tokens but 1 images"
    )
