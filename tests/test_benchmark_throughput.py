"""`benchmarks/recipe_throughput.py` runs a recipe's training steps at tiny size on CPU and reports its throughput, peak
memory and MFU next to the Cookbook's matching row: full, frozen vision, LoRA, and QLoRA where bitsandbytes is
installed (it runs 4-bit on CPU), which without it says it was skipped."""

import json
import os
import subprocess
import sys

import pytest
from transformers.utils import is_bitsandbytes_available

from phi3v.tasks import PUBLISHED_THROUGHPUT

from .conftest import REPO_ROOT


SCRIPT = REPO_ROOT / "benchmarks" / "recipe_throughput.py"


def run_benchmark(recipe: str, checkpoint, output) -> tuple[dict, str]:
    command = [
        sys.executable,
        str(SCRIPT),
        f"recipes/{recipe}",
        "--model_config",
        str(checkpoint),
        "--use_cpu",
        "true",
    ]
    command += ["--gradient_accumulation_steps", "1", "--benchmark_warmup", "1", "--benchmark_steps", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*command, "--output", str(output)],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text()), done.stdout


NEEDS_BITSANDBYTES = pytest.mark.skipif(not is_bitsandbytes_available(), reason="4-bit needs bitsandbytes")


@pytest.mark.parametrize(
    "recipe, method",
    [
        ("docvqa-full.yaml", "full"),
        ("docvqa-frozen-vision.yaml", "frozen-vision"),
        ("docvqa-lora.yaml", "lora"),
        pytest.param("docvqa-qlora.yaml", "qlora", marks=NEEDS_BITSANDBYTES),
    ],
)
def test_tiny_recipe_on_cpu(tiny_checkpoint, tmp_path, recipe, method):
    result, stdout = run_benchmark(recipe, tiny_checkpoint, tmp_path / "result.json")

    assert result["skipped"] is None and result["method"] == method
    assert result["images_per_second"] > 0 and result["tokens_per_second"] > result["images_per_second"]
    assert result["peak_memory_gib"] > 0 and result["peak_memory_kind"] == "process peak RSS"
    assert 0 < result["mfu"] <= 1
    # the recipes ask for flash-attention, which a CPU has not: the fallback is used and said
    assert result["attn_implementation"] == "sdpa" and "sdpa used" in result["notes"][0]
    assert result["dtype"] == "bfloat16" and result["num_crops"] == 16 and result["activation_checkpointing"]
    # what trains follows the recipe: everything, the language model only, or LoRA adapters on every part
    trainable = {part: trained / params for part, (params, trained) in result["params"].items()}
    expected = {
        "full": {"vision": 1, "projector": 1, "language": 1},
        "frozen-vision": {"vision": 0, "projector": 0, "language": 1},
    }
    if method in ("lora", "qlora"):  # a 4-bit weight counts as its unquantised size
        assert all(0 < share < 1 for share in trainable.values())
    else:
        assert trainable == expected[method]

    row = next(r for r in PUBLISHED_THROUGHPUT if r.method == method and not r.flash_attention)
    assert result["cookbook"]["images_per_second"] == row.images_per_second
    assert result["cookbook"]["images_per_second_per_gpu"] == pytest.approx(row.images_per_second / 8)
    assert result["plan"] is None
    assert "| this run (cpu, sdpa" in stdout and f"| Cookbook {method} (8xA100-80GB" in stdout


@pytest.mark.skipif(is_bitsandbytes_available(), reason="bitsandbytes is installed: QLoRA would run")
def test_qlora_without_bitsandbytes_is_skipped(tiny_checkpoint, tmp_path):
    result, stdout = run_benchmark("docvqa-qlora.yaml", tiny_checkpoint, tmp_path / "result.json")

    assert result["skipped"] == "skipped: bitsandbytes not installed"
    assert result["cookbook"]["method"] == "qlora" and "images_per_second" not in result
    assert "skipped: bitsandbytes not installed" in stdout
