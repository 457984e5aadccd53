# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Pre-flight plan of a training recipe, without loading the model: parameters, tokens per sample, peak memory per
GPU by term, and time. `scripts/sft.py` and `scripts/dpo.py` print the same plan before the model loads.

Usage:

    # the recipe's own layout (the accelerate config its header names), the GPU torch sees (else an A100-80GB)
    python scripts/plan.py recipes/cookbook/docvqa/sft-lora.yaml

    # another layout on 4 GPUs of 24 GB, with an assumed sequence length instead of reading the data
    python scripts/plan.py recipes/cookbook/docvqa/sft-full.yaml --config_file accelerate_configs/zero3.yaml \
        --num_gpus 4 --gpu_memory 24 --tokens_per_sample 2443

Flags after the recipe override it, as for `scripts/sft.py`. Without `--tokens_per_sample` the training split is read
(image headers only); when it cannot be (a Hub dataset offline), the plan says so and assumes the Phi-3 Cookbook's
2,443 tokens at num_crops 16, or a square image at the recipe's num_crops. A Hub model whose config cannot be read
offline is planned with the Phi-3-vision architecture (both official checkpoints share it). See docs/plan.md.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from trl import SFTConfig, TrlParser

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.arguments import ScriptArgumentParser, check_flag
from phi3v.checks import positive_int
from phi3v.data.loading import load_splits
from phi3v.errors import UsageError, run_script
from phi3v.planning.parallelism import Parallelism, detect_gpu, parallelism_from_config, with_gpus
from phi3v.planning.plan import format_plan, make_plan
from phi3v.planning.run import model_config_or_default
from phi3v.planning.tokens import TokenStats, assumed_tokens, checkpoint_num_crops, dataset_lengths
from phi3v.training import (
    Phi3VModelConfig,
    Phi3VScriptArguments,
    Phi3VSFTCollator,
    check_run_rows,
    load_processor,
    parse_recipe,
    training_task,
)


# TrainingArguments refuses bf16 without a GPU; the plan reads the precision from the model's `dtype` instead.
CPU_OVERRIDES = ["--use_cpu", "true", "--bf16", "false", "--fp16", "false"]


@dataclass
class PlanArguments:
    """The layout and hardware planned for; the recipe and its overrides are the other arguments."""

    config_file: str | None = field(
        default=None, metadata={"help": "accelerate config; default: the recipe header's, else one GPU"}
    )
    num_gpus: int | None = field(
        default=None, metadata={"help": "data-parallel GPUs; default: the config's num_processes"}
    )
    gpu_memory: float | None = field(
        default=None, metadata={"help": "GB per GPU; default: the GPU torch sees, else 80"}
    )
    gpu: str | None = field(
        default=None, metadata={"help": "GPU family for the peak FLOP/s (A100, H100, ...); default: the one seen"}
    )
    tokens_per_sample: float | None = field(
        default=None, metadata={"help": "assume this length instead of reading the data"}
    )

    def __post_init__(self):
        check_flag("num_gpus", self.num_gpus, positive_int)
        if self.gpu_memory is not None and self.gpu_memory <= 0:
            raise UsageError(f"--gpu_memory must be a positive number of GB, got {self.gpu_memory}.")


def header_config_file(recipe: str) -> str | None:
    """The accelerate config named in the recipe's header comment (`--config_file accelerate_configs/X.yaml`)."""
    match = re.search(r"--config_file\s+(\S+\.yaml)", Path(recipe).read_text()) if recipe.endswith(".yaml") else None
    return match.group(1) if match else None


def read_tokens(script_args, training_args, model_args, tokens_per_sample: float | None) -> TokenStats:
    if tokens_per_sample is None:
        try:
            split = script_args.dataset_train_split
            rows = load_splits(script_args.dataset_name, [split], script_args.dataset_config)[split]
            rows, _, _ = check_run_rows(script_args, rows)  # the rows sft.py would train on, or its refusal
            _, to_conversation = training_task(script_args, rows)
            collator = Phi3VSFTCollator(load_processor(model_args), None, to_conversation)
            source = f"{script_args.dataset_name} {split}"
            return TokenStats(dataset_lengths(rows, collator), training_args.max_length, source)
        except (OSError, ValueError) as error:  # offline, gated, absent or unreadable: assume a length instead
            print(f"Dataset not read ({type(error).__name__}: {str(error).splitlines()[0][:160]})")
    num_crops = model_args.num_crops or checkpoint_num_crops(model_args.model_name_or_path) or 16
    tokens, source = assumed_tokens(num_crops)
    if tokens_per_sample is not None:
        tokens, source = tokens_per_sample, "--tokens_per_sample"
    return TokenStats([tokens], training_args.max_length, source, assumed=True)


def main():
    parser = ScriptArgumentParser(
        (PlanArguments,),
        description=__doc__,
        allow_abbrev=False,  # a recipe flag must not be taken for an abbreviation of one of these
        epilog="Other flags: those of scripts/sft.py, overriding the recipe.",
    )
    plan_args, recipe_args = parser.parse_known()
    if not torch.cuda.is_available():
        recipe_args += CPU_OVERRIDES
    trl_parser = TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig))
    script_args, training_args, model_args = parse_recipe(trl_parser, recipe_args)

    config_file = plan_args.config_file or (header_config_file(recipe_args[0]) if recipe_args else None)
    parallelism = parallelism_from_config(config_file) if config_file else Parallelism()
    parallelism = with_gpus(parallelism, plan_args.num_gpus)
    tokens = read_tokens(script_args, training_args, model_args, plan_args.tokens_per_sample)
    gpu = detect_gpu(plan_args.gpu_memory, plan_args.gpu)
    config, note = model_config_or_default(model_args)
    if note:
        print(note)
    plan = make_plan(config, model_args, training_args, tokens, parallelism, gpu)
    print(format_plan(plan))


if __name__ == "__main__":
    run_script(main)
