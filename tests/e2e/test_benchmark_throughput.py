"""`benchmarks/recipe_throughput.py` as a command (its flags, its JSON file; run in this process as `python
benchmarks/recipe_throughput.py` would, on the one torch thread of the test processes): the LoRA recipe at tiny size
on CPU, with the plan's prediction."""

import json

from ..safety_helpers import output_of, run_script_here
from ..unit.test_benchmark_throughput import TINY_RUN, check_result


def test_lora_recipe_as_a_command(tiny_checkpoint, tmp_path):
    output = tmp_path / "result.json"
    done = run_script_here(
        "benchmarks/recipe_throughput.py",
        "recipes/cookbook/docvqa/sft-lora.yaml",
        *("--model_config", tiny_checkpoint, *TINY_RUN, "--output", output, "--plan", "true"),
    )
    assert done.returncode == 0, output_of(done)[-3000:]
    result = json.loads(output.read_text())
    check_result(result, done.stdout, "lora")
    assert result["plan"] is not None
