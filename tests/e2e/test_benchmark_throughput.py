"""`benchmarks/recipe_throughput.py` as a command (a subprocess on one thread: the flags, the JSON file): the LoRA recipe
at tiny size on CPU, with the plan's prediction."""

import json
import os
import subprocess
import sys

from ..conftest import REPO_ROOT
from ..unit.test_benchmark_throughput import SCRIPT, TINY_RUN, check_result


def test_lora_recipe_as_a_command(tiny_checkpoint, tmp_path):
    output = tmp_path / "result.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "recipes/cookbook/docvqa/sft-lora.yaml",
        "--model_config",
        str(tiny_checkpoint),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*command, *TINY_RUN, "--output", str(output), "--plan", "true"],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    check_result(result, done.stdout, "lora")
    assert result["plan"] is not None
