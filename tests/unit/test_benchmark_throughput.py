"""`benchmarks/recipe_throughput.py` runs a recipe's training steps at tiny size on CPU and reports its throughput, peak
memory and MFU next to the Cookbook's matching row: full, frozen vision, LoRA, and QLoRA where bitsandbytes is
installed (it runs 4-bit on CPU), which without it says it was skipped.

These call the script's `main` in this process, which spares each the ~14 s of importing torch, transformers, TRL and
PEFT again; tests/e2e/test_benchmark_throughput.py runs the LoRA recipe as a command."""

import runpy

import pytest
from transformers.utils import is_bitsandbytes_available

from phi3v.tasks import PUBLISHED_THROUGHPUT

from ..conftest import REPO_ROOT
from ..evaluation_helpers import one_torch_thread


SCRIPT = REPO_ROOT / "benchmarks" / "recipe_throughput.py"
TINY_RUN = ["--use_cpu", "true", "--gradient_accumulation_steps", "1", "--benchmark_warmup", "1"]
TINY_RUN += ["--benchmark_steps", "1"]


def check_result(result: dict, stdout: str, method: str) -> None:
    assert result["skipped"] is None and result["method"] == method
    assert result["images_per_second"] > 0 and result["tokens_per_second"] > result["images_per_second"]
    assert result["peak_memory_gib"] > 0 and result["peak_memory_kind"] == "process peak RSS"
    assert 0 < result["mfu"] <= 1
    # the recipes ask for flash-attention, which a CPU has not: the fallback is used and said
    assert result["attn_implementation"] == "sdpa" and "sdpa used" in result["notes"][0]
    assert result["dtype"] == "bfloat16" and result["num_crops"] == 16 and result["activation_checkpointing"]
    # what trains follows the recipe: everything, the language model only, or LoRA adapters on every part (a 4-bit
    # weight counts as its unquantised size)
    trainable = {part: trained / params for part, (params, trained) in result["params"].items()}
    if method in ("lora", "qlora"):
        assert all(0 < share < 1 for share in trainable.values())
    else:  # the counts leave out the token embedding (a lookup, no FLOPs), which frozen vision freezes too
        frozen_vision = method == "frozen-vision"
        assert trainable == {"vision": 1 - frozen_vision, "projector": 1 - frozen_vision, "language": 1}

    row = next(r for r in PUBLISHED_THROUGHPUT if r.method == method and not r.flash_attention)
    assert result["cookbook"]["images_per_second"] == row.images_per_second
    assert result["cookbook"]["images_per_second_per_gpu"] == pytest.approx(row.images_per_second / 8)
    if result["plan"] is not None:  # --plan: the plan's prediction for this run, at its measured length
        assert result["plan"]["images_per_second"] > 0 and result["plan"]["peak_memory_gib"] > 0
        assert "| plan |" in stdout
    assert "| this run (cpu, sdpa" in stdout and f"| Cookbook {method} (8xA100-80GB" in stdout


@pytest.fixture(scope="module")
def benchmark_main():
    return runpy.run_path(str(SCRIPT))["main"]


@pytest.mark.parametrize(
    "recipe, method",
    [
        ("cookbook/docvqa/sft-full.yaml", "full"),
        ("cookbook/docvqa/sft-frozen-vision.yaml", "frozen-vision"),
        pytest.param(
            "cookbook/docvqa/sft-qlora.yaml",
            "qlora",
            marks=pytest.mark.skipif(not is_bitsandbytes_available(), reason="4-bit needs bitsandbytes"),
        ),
    ],
)
def test_tiny_recipe_on_cpu(benchmark_main, tiny_checkpoint, capsys, recipe, method):
    with one_torch_thread():
        result = benchmark_main([f"{REPO_ROOT}/recipes/{recipe}", "--model_config", str(tiny_checkpoint), *TINY_RUN])
    check_result(result, capsys.readouterr().out, method)


@pytest.mark.skipif(is_bitsandbytes_available(), reason="bitsandbytes is installed: QLoRA runs")
def test_qlora_without_bitsandbytes_is_skipped(benchmark_main, tiny_checkpoint, capsys):
    recipe = f"{REPO_ROOT}/recipes/cookbook/docvqa/sft-qlora.yaml"
    result = benchmark_main([recipe, "--model_config", str(tiny_checkpoint), "--use_cpu", "true"])

    assert result["skipped"] == "skipped: bitsandbytes not installed"
    assert result["cookbook"]["method"] == "qlora" and "images_per_second" not in result
    assert "skipped: bitsandbytes not installed" in capsys.readouterr().out
