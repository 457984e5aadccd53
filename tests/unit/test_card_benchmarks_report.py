"""The model cards' benchmark table and the forgetting report, without lmms-eval: the published numbers against the
team's copy of the cards, the rows and their tolerance verdicts, the report files, the benchmark fixtures in their Hub
layout, and the script's one-line errors before anything loads (tests/unit/test_card_benchmarks_lmms.py runs lmms-eval)."""

import json
import re
import runpy
import sys

import datasets
import pytest

from phi3v.card_benchmarks.forgetting import forgetting_rows, log_to_wandb, render_table, write_report
from phi3v.card_benchmarks.published import CARDS, PUBLISHED_BENCHMARKS, TOLERANCE, check_tasks
from phi3v.errors import UsageError
from phi3v.fixtures.card_benchmarks import FEATURES, ORGANISATION, SPLITS, make_benchmark_fixtures

from ..evaluation_helpers import REPO_ROOT


PUBLISHED_RESULTS = REPO_ROOT.parent / "shared" / "docs" / "published_results.md"


def published_section_3() -> dict[str, list[str]]:
    """Benchmark name -> its cells in section 3 of published_results.md (card 3, card 3.5, lmms-eval's reproduction)."""
    if not PUBLISHED_RESULTS.exists():
        pytest.skip(
            f"{PUBLISHED_RESULTS} is absent: the team's copy of the cards lives in ../shared beside the checkout"
        )
    text = PUBLISHED_RESULTS.read_text()
    section = text[text.index("## 3. Base-model published benchmarks") : text.index("## 4.")]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows[1:]}


def first_number(cell: str) -> float | None:
    match = re.match(r"\d+(\.\d+)?", cell)
    return float(match.group()) if match else None


def test_the_published_table_is_the_cards():
    table = published_section_3()
    assert [benchmark.name for benchmark in PUBLISHED_BENCHMARKS] == list(table)
    for benchmark in PUBLISHED_BENCHMARKS:
        phi3, phi35, reproduction = (first_number(cell) for cell in table[benchmark.name])
        assert benchmark.published == {CARDS[0]: phi3, CARDS[1]: phi35}, benchmark.name
        assert benchmark.lmms_eval_reproduction == reproduction, benchmark.name
    assert TOLERANCE == 1.5  # "within about 1.5 points of the card"


def test_check_tasks_names_the_unknown_and_lists_the_benchmarks():
    assert check_tasks(["pope", "ai2d", "pope"]) == ["pope", "ai2d"]
    with pytest.raises(UsageError, match=r"\['mme'\].*'ai2d'"):
        check_tasks(["pope", "mme"])


def test_rows_judge_the_tolerance_only_on_whole_comparable_splits():
    scores = {
        "base": {"pope": 86.0, "textvqa_val": 68.0, "geometry3k": 38.0},
        "sft": {"pope": 80.0, "textvqa_val": None, "geometry3k": 40.0},
    }
    pope, textvqa, geometry = forgetting_rows(scores, CARDS[0], limit=None)
    assert (pope.published, pope.base_minus_published, pope.within_tolerance) == (85.8, 0.2, True)
    assert pope.fine_tuned == {"sft": 80.0} and pope.differences == {"sft": -6.0}
    assert (textvqa.base_minus_published, textvqa.within_tolerance) == (-2.9, False)
    assert textvqa.differences == {"sft": None}
    assert geometry.within_tolerance is None and "not the card's InterGPS" in geometry.why_not_judged
    limited = forgetting_rows(scores, CARDS[0], limit=50)[0]
    assert limited.within_tolerance is None and limited.why_not_judged == "--limit 50: not the whole split"
    no_card = forgetting_rows(scores, None, limit=None)[0]
    assert no_card.published is None and no_card.within_tolerance is None


def test_report_files(tmp_path):
    rows = forgetting_rows({"base": {"pope": 86.0}, "sft": {"pope": 80.0}}, CARDS[1], limit=None)
    settings = {"models": {"base": "b", "sft": "s"}, "card": CARDS[1], "limit": None, "command": "python x.py"}
    report = write_report(tmp_path, rows, settings).read_text()
    assert render_table(rows, "base") in report
    assert "| POPE (test) | 86.1 | 86.0 | -0.1 | yes | 80.0 | -6.0 |" in report
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["benchmarks"][0]["differences"] == {"sft": -6.0} and metrics["tolerance"] == TOLERANCE


def test_the_report_logs_to_wandb_offline(tmp_path, monkeypatch):
    import wandb

    wandb.teardown()  # W&B reads WANDB_DIR once per process: another test's run in this worker may have set it
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    rows = forgetting_rows({"base": {"pope": 86.0}, "sft": {"pope": 80.0}}, CARDS[0], limit=None)
    settings = {"models": {"base": "b", "sft": "s"}, "card": CARDS[0], "limit": None, "command": "python x.py"}
    (tmp_path / "report").mkdir()
    write_report(tmp_path / "report", rows, settings)
    try:
        assert log_to_wandb(tmp_path / "report", rows, settings)
    finally:
        wandb.teardown()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_fixtures_load_in_their_hub_schema(tmp_path):
    root = make_benchmark_fixtures(tmp_path / "benchmarks", rows=4)
    # A cache of this test's own: datasets keys a local repository's cache by its name and file patterns, not by its
    # path or content, so another POPE directory's cached rows would come back.
    loaded = {
        name: datasets.load_dataset(str(root / ORGANISATION / name), cache_dir=str(tmp_path / "cache"))
        for name in FEATURES
    }
    for name, features in FEATURES.items():
        assert list(loaded[name]) == [SPLITS[name]]
        assert loaded[name][SPLITS[name]].features == features and loaded[name][SPLITS[name]].num_rows == 4
    assert loaded["POPE"]["test"]["answer"] == ["yes", "no", "yes", "no"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tasks", "mme"], "Not a benchmark of the model cards: ['mme']"),
        (["--fine_tuned", "base=outputs/x"], "may not be named `base`"),
        (["--limit", "0"], "argument --limit: must be at least 1"),
    ],
)
def test_script_errors_are_one_line_before_anything_loads(
    flags, message, tmp_path, tiny_checkpoint, capsys, monkeypatch
):
    monkeypatch.delenv("PHI3V_DEBUG", raising=False)
    argv = ["--base", str(tiny_checkpoint), *flags, "--output_dir", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", ["scripts/forgetting.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / "forgetting.py"), run_name="__main__")
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and stderr.splitlines() == [f"error: {stderr.splitlines()[0][7:]}"]
    assert message in stderr and not (tmp_path / "out").exists()
