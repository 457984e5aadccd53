"""scripts/reproduce.py refuses what it cannot reproduce before any work (run in this process; a published row end to
end on the tiny model: tests/e2e/test_reproduce.py)."""

from ..safety_helpers import run_script_here


TINY_CPU = [
    *("--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--attn_implementation", "sdpa"),
    *("--num_crops", "4", "--max_length", "512", "--activation_checkpointing", "false"),
    *("--gradient_accumulation_steps", "1", "--per_device_train_batch_size", "8", "--learning_rate", "3e-3"),
    *("--warmup_steps", "0", "--dataloader_num_workers", "0", "--save_strategy", "no"),
]


def test_refuses_a_recipe_that_is_not_a_published_row(tmp_path):
    result = run_script_here("reproduce.py", "recipes/smoke/sft-full.yaml", "--report_dir", tmp_path / "report")
    assert result.returncode != 0 and "not the recipe of a published row" in result.stderr


def test_refuses_a_report_dir_in_use(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("my own report")
    recipe = "recipes/cookbook/hateful-memes/sft-full.yaml"
    result = run_script_here("reproduce.py", recipe, "--report_dir", tmp_path / "report", *TINY_CPU)
    assert result.returncode != 0 and "is not empty" in result.stderr
    # --overwrite replaces an earlier reproduction only: never a user's own files, nor another kind of output.
    result = run_script_here("reproduce.py", recipe, "--report_dir", tmp_path / "report", "--overwrite", *TINY_CPU)
    assert result.returncode != 0 and "was not written by this project" in result.stderr
    assert (tmp_path / "report" / "report.md").read_text() == "my own report"
    from phi3v.outputs import mark_output_dir

    evaluation = mark_output_dir(tmp_path / "evaluation", "evaluation", "scripts/evaluate.py")
    (evaluation / "report.md").write_text("an evaluation")
    result = run_script_here("reproduce.py", recipe, "--report_dir", evaluation, "--overwrite", *TINY_CPU)
    assert result.returncode != 0 and "holds this project's evaluation output" in result.stderr
    assert (evaluation / "report.md").read_text() == "an evaluation"
