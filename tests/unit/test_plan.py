"""The pre-flight plan: exact parameter counts on the meta device, token statistics equal to the collator's lengths,
peak memory and throughput held against the Phi-3 Cookbook's eight A100 measurements, and `scripts/plan.py`."""

import runpy
import sys
from dataclasses import replace
from pathlib import Path

import datasets
import pytest
import torch
from peft import get_peft_model
from transformers import AutoConfig, AutoProcessor
from trl import SFTConfig, TrlParser

import phi3v  # noqa: F401
from phi3v.data.loading import load_splits
from phi3v.modeling import Phi3VForCausalLM
from phi3v.planning import cookbook, print_run_plan
from phi3v.planning.memory import Workload, estimate_memory
from phi3v.planning.parallelism import Gpu, Parallelism, parallelism_from_config, with_gpus
from phi3v.planning.parameters import count_parameters
from phi3v.planning.tokens import TokenStats, assumed_tokens, dataset_lengths, square_image_tokens
from phi3v.training import (
    Phi3VModelConfig,
    Phi3VScriptArguments,
    Phi3VSFTCollator,
    add_length_column,
    lora_config,
    parse_recipe,
    training_task,
)

from ..conftest import hub_files


REPO_ROOT = Path(__file__).resolve().parents[2]
CPU = ["--use_cpu", "true", "--bf16", "false"]
TOTAL = 4_146_621_440
# The CLIP layer Phi-3-V never runs (its 24th) and post_layernorm: always frozen.
UNUSED_CLIP = 4 * (1024 * 1024 + 1024) + (1024 * 4096 + 4096) + (4096 * 1024 + 1024) + 2 * 2 * 1024 + 2 * 1024


def recipe_args(recipe: str, *overrides: str):
    args = [str(REPO_ROOT / "recipes" / recipe), *CPU, *overrides]
    return parse_recipe(TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig)), args)


@pytest.fixture(scope="module")
def phi3v_config():
    return AutoConfig.from_pretrained(hub_files("Phi-3-vision-128k-instruct"))


@pytest.fixture(scope="module")
def measured():
    hub = hub_files("Phi-3-vision-128k-instruct")
    return cookbook.comparison(hub), cookbook.comparison(hub, decoder_gradient=False)


# ---------------------------------------------------------------- parameters


def test_full_and_frozen_parameter_counts_are_exact(official_files):
    config = AutoConfig.from_pretrained(official_files)
    _, _, full = recipe_args("cookbook/docvqa/sft-full.yaml")
    params = count_parameters(config, full)
    assert params.total == TOTAL
    assert params.trainable == TOTAL - UNUSED_CLIP
    _, _, frozen = recipe_args("cookbook/docvqa/sft-frozen-vision.yaml")
    # The language model is 3,821,079,552 of the 4,146,621,440; the Cookbook's frozen image model also freezes the
    # token embedding (32,064 x 3,072), which Microsoft's code keeps inside `vision_embed_tokens`.
    assert count_parameters(config, frozen).trainable == 3_821_079_552 - 32_064 * 3_072


def test_lora_and_qlora_counts_are_r_times_in_plus_out_per_adapted_linear(phi3v_config):
    _, _, lora = recipe_args("cookbook/docvqa/sft-lora.yaml")
    params = count_parameters(phi3v_config, lora)
    # Formula, per matched linear layer of the 23 CLIP layers run, the decoder, the LM head and the projector.
    per_decoder_layer = sum(
        lora.lora_r * (i + o) for i, o in [(3072, 9216), (3072, 3072), (3072, 16384), (8192, 3072)]
    )
    per_clip_layer = 4 * lora.lora_r * 2048 + 2 * lora.lora_r * (1024 + 4096)
    projector = lora.lora_r * (4096 + 3072) + lora.lora_r * 6144
    expected = 32 * per_decoder_layer + lora.lora_r * (3072 + 32064) + 23 * per_clip_layer + projector
    assert params.lora == params.trainable == expected == 65_447_936
    # What PEFT itself adds, on the same meta model and the run's own LoRA config.
    with torch.device("meta"):
        model = Phi3VForCausalLM(phi3v_config)
    model = get_peft_model(model, lora_config(lora, model))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == params.lora
    assert (params.language_trains, params.vision_trains) == ("adapter", "adapter")

    _, _, qlora = recipe_args("cookbook/docvqa/sft-qlora.yaml")
    quantized = count_parameters(phi3v_config, qlora).quantized
    # Every linear weight but the LM head's (and the unused CLIP layer's, which is a linear layer too).
    linears = 32 * (9216 + 3072 + 16384 + 8192) * 3072 + 24 * (4 * 1024 + 2 * 4096) * 1024 + (4096 + 3072) * 3072
    assert quantized == linears


# ---------------------------------------------------------------- tokens


def test_token_stats_equal_the_collator_lengths_and_count_rows_over_max_length(tiny_checkpoint, synthetic_catalogue):
    rows = load_splits(str(synthetic_catalogue), ["train"])["train"]
    script_args = Phi3VScriptArguments(dataset_name=str(synthetic_catalogue))
    _, to_conversation = training_task(script_args, rows)
    collator = Phi3VSFTCollator(AutoProcessor.from_pretrained(tiny_checkpoint), None, to_conversation)
    lengths = dataset_lengths(rows, collator)
    assert lengths == add_length_column(rows, collator)["length"]

    ordered = sorted(lengths)
    max_length = ordered[len(ordered) // 2]  # about half the rows are longer
    stats = TokenStats(lengths, max_length, "train")
    assert stats.median == ordered[(len(ordered) + 1) // 2 - 1]
    assert stats.quantile(0.95) <= max(lengths) and stats.quantile(1.0) == max(lengths)
    assert stats.over_max_length == sum(n > max_length for n in lengths) > 0
    assert stats.longest_kept == max_length
    kept = add_length_column(rows, collator, max_length)
    assert len(kept) == len(lengths) - stats.over_max_length
    # sft.py hands the plan's lengths on, so the rows are counted once.
    assert add_length_column(rows, collator, max_length, lengths=stats.lengths)["length"] == kept["length"]


def test_assumed_tokens_follow_num_crops():
    assert assumed_tokens(16)[0] == cookbook.COOKBOOK_TOKENS
    assert square_image_tokens(16) == 2509 and square_image_tokens(4) == 757
    assert assumed_tokens(4)[0] == 757 + 60


def test_sft_prints_the_plan_from_the_rows_it_read(tiny_checkpoint, synthetic_catalogue, capsys):
    script_args, training_args, model_args = recipe_args(
        "smoke/sft-full.yaml", "--model_name_or_path", str(tiny_checkpoint), "--dataset_name", str(synthetic_catalogue)
    )
    rows = load_splits(str(synthetic_catalogue), ["train"])["train"]
    _, to_conversation = training_task(script_args, rows)
    collator = Phi3VSFTCollator(AutoProcessor.from_pretrained(tiny_checkpoint), None, to_conversation)
    plan = print_run_plan(model_args, training_args, rows, collator)
    out = capsys.readouterr().out
    assert out.startswith("Pre-flight plan:") and "tokens per sample: median" in out
    assert plan.params.trainable < plan.params.total
    assert plan.tokens.lengths == dataset_lengths(rows, collator)


# ---------------------------------------------------------------- the Cookbook's measurements

# The Cookbook's eager LoRA and QLoRA runs (fp32 weights, fp16 autocast, DDP) measured 34 and 22 GB more than their
# flash-attention runs; the plan finds the fp32 weights and residual stream and one checkpointed layer's eager scores,
# ~15 GB short of that (docs/plan.md).
UNEXPLAINED = {"LoRA", "QLoRA"}


@pytest.mark.parametrize("name", [row.name for row in cookbook.MEASURED])
def test_memory_within_20_percent_of_the_cookbook(measured, name):
    if name in UNEXPLAINED:
        pytest.xfail("the eager fp32/fp16-autocast DDP rows hold ~15 GB the plan cannot account for")
    row = measured[1][name] if "frozen" in name else measured[0][name]
    assert row.planned_memory_gb == pytest.approx(row.memory_gb, rel=0.20)
    # The frozen rows fit either reading of the decoder's gradient.
    assert measured[0][name].planned_memory_gb == pytest.approx(row.memory_gb, rel=0.20)


@pytest.mark.parametrize("top,bottom", cookbook.RATIOS)
def test_throughput_ratios_within_35_percent_of_the_cookbook(measured, top, bottom):
    # Frozen-image rows: planned without the decoder's gradient (see the next test).
    rows = measured[1] if "frozen" in top + bottom else measured[0]
    expected = rows[top].images_per_second / rows[bottom].images_per_second
    planned = rows[top].planned_images_per_second / rows[bottom].planned_images_per_second
    assert planned == pytest.approx(expected, rel=0.35)


def test_frozen_image_rows_exceed_the_a100_peak_if_the_decoder_trains(measured):
    with_gradient, without = measured

    def implied_mfu(row, attention):  # the utilisation the measured speed needs under the plan's FLOPs
        return row.images_per_second / row.planned_images_per_second * cookbook.MFU[attention]

    assert implied_mfu(with_gradient["frozen image + FA2"], "flash") > 1.0
    assert implied_mfu(with_gradient["frozen image"], "eager") > 2.5 * cookbook.MFU["eager"]
    for name in ("full FT + FA2", "LoRA + FA2", "QLoRA + FA2"):
        assert implied_mfu(with_gradient[name], "flash") < 0.5
    assert without["frozen image + FA2"].planned_images_per_second == pytest.approx(31.736, rel=0.35)


# ---------------------------------------------------------------- the memory model


def test_sharding_offload_checkpointing_and_attention_move_memory_the_right_way(phi3v_config):
    _, _, full = recipe_args("cookbook/docvqa/sft-full.yaml")
    params = count_parameters(phi3v_config, full)
    workload = Workload(2443)

    def total(parallelism, work=workload):
        return estimate_memory(phi3v_config, params, work, parallelism).total

    ddp, zero2, zero3 = Parallelism("ddp", 8), Parallelism("zero2", 8), Parallelism("zero3", 8, overlap_comm=True)
    offload = replace(zero3, offload_optimizer=True, offload_params=True)
    assert total(ddp) > total(zero2) > total(zero3) > total(offload)
    assert total(zero2, replace(workload, attention="eager")) > total(zero2)
    assert total(zero2, replace(workload, checkpointing=False)) > total(zero2)
    plan = estimate_memory(phi3v_config, params, workload, zero2)
    assert plan.optimizer == pytest.approx(params.trainable * 16 / 8 / 1e9)  # fp32 master + 2 moments + step temp


def test_accelerate_configs_give_their_layout():
    configs = REPO_ROOT / "accelerate_configs"
    kinds = {
        name: parallelism_from_config(configs / f"{name}.yaml")
        for name in ("single_gpu", "multi_gpu", "fsdp", "zero2", "zero3", "zero3_offload")
    }
    assert {name: p.kind for name, p in kinds.items()} == {
        "single_gpu": "single",
        "multi_gpu": "ddp",
        "fsdp": "fsdp",
        "zero2": "zero2",
        "zero3": "zero3",
        "zero3_offload": "zero3",
    }
    assert kinds["zero3_offload"].offload_optimizer and kinds["zero3_offload"].offload_params
    assert with_gpus(kinds["multi_gpu"], 1).kind == "single" and with_gpus(kinds["zero2"], 4).num_gpus == 4
    assert Gpu().memory_gb == 80


# ---------------------------------------------------------------- scripts/plan.py


def run_plan_script(monkeypatch, capsys, *args) -> str:
    monkeypatch.setattr(sys, "argv", ["scripts/plan.py", *args])
    runpy.run_path(str(REPO_ROOT / "scripts" / "plan.py"), run_name="__main__")
    return capsys.readouterr().out


def test_plan_script_prints_every_section_and_warns_when_it_does_not_fit(monkeypatch, capsys):
    hub = str(hub_files("Phi-3-vision-128k-instruct"))
    args = ["recipes/cookbook/docvqa/sft-lora.yaml", "--model_name_or_path", hub, "--tokens_per_sample", "2443.23"]
    monkeypatch.chdir(REPO_ROOT)
    out = run_plan_script(monkeypatch, capsys, *args)
    for section in (
        "Pre-flight plan:",
        "parameters: 4,146,621,440 total, 65,447,936 trainable",
        "tokens per sample: 2,443 assumed",
        "parallelism: DDP on 8 GPUs (accelerate_configs/multi_gpu.yaml)",
        "weights",
        "gradients",
        "optimizer",
        "activations",
        "overhead",
        "total",
        "time:",
    ):
        assert section in out, section
    assert "WARNING" not in out
    out = run_plan_script(monkeypatch, capsys, *args, "--gpu_memory", "8")
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "more than the 8 GB" in warnings[0]


def test_plan_script_plans_offline_with_assumed_tokens_and_the_built_in_architecture(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: neither the dataset nor the config is there
    out = run_plan_script(monkeypatch, capsys, "recipes/cookbook/docvqa/sft-full.yaml", "--num_gpus", "4")
    lines = out.splitlines()
    assert lines[0].startswith("Dataset not read")
    assert lines[1].startswith("Config of microsoft/Phi-3-vision-128k-instruct not read")
    assert f"parameters: {TOTAL:,} total" in out
    assert "2,443 assumed (the Phi-3 Cookbook's DocVQA average at num_crops 16)" in out
    assert "DeepSpeed ZeRO-2 on 4 GPUs (accelerate_configs/zero2.yaml)" in out


def test_dpo_plan_from_an_sft_adapter_counts_pairs_and_reads_the_base_config(tiny_checkpoint, tmp_path, capsys):
    from PIL import Image
    from trl import DPOConfig

    from phi3v.training import Phi3VPreferenceCollator

    from ..evaluation_helpers import make_lora_adapter

    adapter = make_lora_adapter(tiny_checkpoint, tmp_path / "sft-adapter")
    prompt = [{"role": "user", "content": "<|image_1|>What is shown in this image?"}]
    pairs = datasets.Dataset.from_list(
        [
            {
                "images": [Image.new("RGB", size, (30, 200, 30))],
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": "A green square."}],
                "rejected": [{"role": "assistant", "content": "A red square, slightly larger than it looks."}],
            }
            for size in ((120, 60), (60, 240))
        ]
    )
    model_args = Phi3VModelConfig(model_name_or_path=str(adapter), dtype="float32", use_peft=True)
    training_args = DPOConfig(output_dir=str(tmp_path / "dpo"), use_cpu=True, bf16=False, report_to="none")
    collator = Phi3VPreferenceCollator(AutoProcessor.from_pretrained(adapter))
    plan = print_run_plan(model_args, training_args, pairs, collator, preference=True)
    assert plan.tokens.lengths == [collator.sequence_length(row) for row in pairs]
    assert plan.workload.batch_size == 2 * training_args.per_device_train_batch_size  # chosen and rejected
    assert plan.params.lora > 0 and not plan.workload.reference_copy  # the reference is the adapter disabled
    assert "Pre-flight plan:" in capsys.readouterr().out
