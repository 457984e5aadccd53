"""`scripts/evaluate.py` under `accelerate launch` on 2 CPU processes answers as one process does."""

import os
import subprocess
import sys

import pytest

from ..evaluation_helpers import REPO_ROOT
from ..unit.test_evaluate import LIMIT, evaluate_args, run_evaluate


@pytest.mark.several_processes
def test_two_processes_give_the_single_process_answers(synthetic_catalogue, tiny_checkpoint, tmp_path, monkeypatch):
    """`accelerate launch` on 2 CPU processes: each answers half the products; the gathered file is identical."""
    args = evaluate_args(synthetic_catalogue, tmp_path / "one", f"base={tiny_checkpoint}") + ["--no_blank_control"]
    run_evaluate(monkeypatch, args)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    args = evaluate_args(synthetic_catalogue, tmp_path / "two", f"base={tiny_checkpoint}") + ["--no_blank_control"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*launcher, str(REPO_ROOT / "scripts" / "evaluate.py"), *args], env=environment, check=True)
    one, two = ((tmp_path / name / "predictions.jsonl").read_text() for name in ("one", "two"))
    assert one == two and len(two.splitlines()) == LIMIT
