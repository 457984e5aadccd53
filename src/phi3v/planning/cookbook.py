"""The plan held against the Phi-3 Cookbook's eight A100 measurements (FineTuning_Vision.md: Phi-3-vision-128k-instruct
on DocVQA, num_crops 16, 2,443.23 tokens per sequence on average, batch 1 per GPU, activation checkpointing, 8 x
A100-80GB): images per second and peak memory per GPU.

How the Cookbook ran them, and so how they are planned: full and frozen-image fine-tuning under DeepSpeed ZeRO-2
(`overlap_comm`, 5e8-element buckets), LoRA and QLoRA under plain DDP; the loss on the full logits. Its flash-attention
rows load bf16; its eager rows are its "fp16" runs, which load the weights in fp32 and train under fp16 autocast (DeepSpeed
casts its model to fp16). `python -m phi3v.planning.cookbook [HUB_FILES_DIR]` prints the side-by-side table.

The frozen-image rows are faster than an A100 can compute if the decoder trains: 31.7 images/s is 4 GPU-seconds per
31.7 x ~80 TFLOP, over 100% of the bf16 peak. They match a run whose decoder layers receive no gradient (the forward
only, through checkpointed layers whose inputs need no gradient: the Cookbook freezes `vision_embed_tokens`, which
holds the shared token embedding). `decoder_gradient=False` plans that reading; `docs/plan.md` gives both.
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from transformers import AutoConfig
from trl import SFTConfig, TrlParser

from phi3v.training import Phi3VModelConfig, Phi3VScriptArguments, parse_recipe

from .memory import Workload, estimate_memory
from .parallelism import PEAK_BF16_FLOPS, Parallelism
from .parameters import count_parameters
from .throughput import MFU, sequence_flops
from .tokens import COOKBOOK_TOKENS


RECIPES = Path(__file__).resolve().parents[3] / "recipes"
COOKBOOK_ZERO2 = Parallelism("zero2", 8, overlap_comm=True, source="the Cookbook's DeepSpeed config")
COOKBOOK_DDP = Parallelism("ddp", 8, source="the Cookbook's DDP")


@dataclass(frozen=True)
class CookbookRow:
    r"""
    One of the Cookbook's measurements and the plan of the same run.

    Args:
        name (`str`): the Cookbook's row.
        recipe (`str`): the recipe that reproduces it, as its path under `recipes/`.
        attention (`str`): `eager` or `flash_attention_2`.
        images_per_second (`float`): measured, over 8 GPUs.
        memory_gb (`float`): measured peak per GPU.
        planned_images_per_second (`float`): planned.
        planned_memory_gb (`float`): planned.
    """

    name: str
    recipe: str
    attention: str
    images_per_second: float
    memory_gb: float
    planned_images_per_second: float = 0.0
    planned_memory_gb: float = 0.0


MEASURED = [
    CookbookRow("full FT", "cookbook/docvqa/sft-full.yaml", "eager", 5.041, 42),
    CookbookRow("full FT + FA2", "cookbook/docvqa/sft-full.yaml", "flash_attention_2", 8.657, 36),
    CookbookRow("frozen image", "cookbook/docvqa/sft-frozen-vision.yaml", "eager", 17.578, 29),
    CookbookRow("frozen image + FA2", "cookbook/docvqa/sft-frozen-vision.yaml", "flash_attention_2", 31.736, 27),
    CookbookRow("LoRA", "cookbook/docvqa/sft-lora.yaml", "eager", 5.591, 50),
    CookbookRow("LoRA + FA2", "cookbook/docvqa/sft-lora.yaml", "flash_attention_2", 12.127, 16),
    CookbookRow("QLoRA", "cookbook/docvqa/sft-qlora.yaml", "eager", 4.831, 32),
    CookbookRow("QLoRA + FA2", "cookbook/docvqa/sft-qlora.yaml", "flash_attention_2", 10.545, 10),
]
# Throughput ratios the plan is held to: (numerator, denominator) row names.
RATIOS = [
    ("LoRA + FA2", "full FT + FA2"),
    ("frozen image + FA2", "full FT + FA2"),
    ("QLoRA + FA2", "LoRA + FA2"),
    ("LoRA", "full FT"),
    ("frozen image", "full FT"),
    ("QLoRA", "LoRA"),
    ("full FT + FA2", "full FT"),
    ("frozen image + FA2", "frozen image"),
    ("LoRA + FA2", "LoRA"),
    ("QLoRA + FA2", "QLoRA"),
]


def plan_row(row: CookbookRow, hub_files: str | Path, decoder_gradient: bool = True) -> CookbookRow:
    """Plans one Cookbook run from its recipe and the checkpoint's config.

    Args:
        row ([`CookbookRow`]): the measurement.
        hub_files (`str` or `Path`): a directory with the checkpoint's `config.json`.
        decoder_gradient (`bool`, *optional*, defaults to `True`): `False` plans the frozen-image rows with no
            gradient through the decoder (see the module's docstring).
    """
    eager = row.attention == "eager"
    args = [str(RECIPES / row.recipe), "--model_name_or_path", str(hub_files), "--attn_implementation", row.attention]
    args += ["--use_cpu", "true", "--bf16", "false"] + (["--dtype", "float32"] if eager else [])
    _, _, model_args = parse_recipe(TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig)), args)
    config = AutoConfig.from_pretrained(hub_files)
    params = count_parameters(config, model_args)
    if not decoder_gradient and params.vision_trains == "frozen":
        params = replace(params, language_trains="frozen")
    workload = Workload(COOKBOOK_TOKENS, attention=row.attention, load_bytes=4 if eager else 2, fused_loss=False)
    parallelism = COOKBOOK_DDP if model_args.use_peft else COOKBOOK_ZERO2
    memory = estimate_memory(config, params, workload, parallelism)
    flops = sequence_flops(config, params, COOKBOOK_TOKENS, workload)
    speed = parallelism.num_gpus * PEAK_BF16_FLOPS["A100"] * MFU["eager" if eager else "flash"] / flops
    return CookbookRow(row.name, row.recipe, row.attention, row.images_per_second, row.memory_gb, speed, memory.total)


def comparison(hub_files: str | Path, decoder_gradient: bool = True) -> dict[str, CookbookRow]:
    """The eight rows, measured and planned, by name (`decoder_gradient` as for [`plan_row`])."""
    return {row.name: plan_row(row, hub_files, decoder_gradient) for row in MEASURED}


def markdown(rows: dict[str, CookbookRow], without: dict[str, CookbookRow]) -> str:
    """The side-by-side tables of `docs/plan.md`: `rows` as configured, `without` the decoder's gradient in the
    frozen-image rows."""
    lines = [
        "| run | Cookbook GB | plan GB | plan / Cookbook | Cookbook img/s | plan img/s | plan / Cookbook |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        cells = [(row.planned_memory_gb, row.planned_images_per_second)]
        if without[name] != row:
            cells.append((without[name].planned_memory_gb, without[name].planned_images_per_second))
        gb = " / ".join(f"{c[0]:.1f}" for c in cells)
        gb_ratio = " / ".join(f"{c[0] / row.memory_gb:.2f}" for c in cells)
        speed = " / ".join(f"{c[1]:.2f}" for c in cells)
        speed_ratio = " / ".join(f"{c[1] / row.images_per_second:.2f}" for c in cells)
        lines.append(
            f"| {name} | {row.memory_gb:.0f} | {gb} | {gb_ratio} | {row.images_per_second:.3f} | {speed} "
            f"| {speed_ratio} |"
        )
    lines += ["", "| throughput ratio | Cookbook | plan | plan / Cookbook |", "|---|---|---|---|"]
    for top, bottom in RATIOS:
        measured = rows[top].images_per_second / rows[bottom].images_per_second
        planned = [r[top].planned_images_per_second / r[bottom].planned_images_per_second for r in (rows, without)]
        planned = planned[:1] if planned[0] == planned[1] else planned
        plan = " / ".join(f"{p:.2f}" for p in planned)
        lines.append(
            f"| {top} / {bottom} | {measured:.2f} | {plan} | {' / '.join(f'{p / measured:.2f}' for p in planned)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    hub = sys.argv[1] if len(sys.argv) > 1 else "../shared/hub_files/Phi-3-vision-128k-instruct"
    print(markdown(comparison(hub), comparison(hub, decoder_gradient=False)))
