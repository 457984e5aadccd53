"""The plan of a run, put together from the recipe's arguments, and its text."""

import math
from dataclasses import dataclass

from transformers import PretrainedConfig, TrainingArguments

from phi3v.training.configs import Phi3VModelConfig

from .memory import CONTEXT_GB, FRAGMENTATION, MemoryPlan, Workload, estimate_memory
from .parallelism import Gpu, Parallelism
from .parameters import ParameterCounts, count_parameters
from .throughput import Throughput, estimate_time, sequence_flops
from .tokens import TokenStats


@dataclass(frozen=True)
class RunPlan:
    r"""
    A training run's pre-flight plan.

    Args:
        model (`str`): the checkpoint.
        method (`str`): what trains, in words.
        params ([`ParameterCounts`]): total and trainable parameters.
        tokens ([`TokenStats`]): tokens per sample.
        parallelism ([`Parallelism`]): the layout.
        gpu ([`Gpu`]): the GPU checked against.
        workload ([`Workload`]): what a GPU runs per micro-step (at the longest row).
        memory ([`MemoryPlan`]): peak memory per GPU.
        throughput ([`Throughput`]): time at the stated utilisation.
        total_steps (`int`, *optional*): optimizer steps of the run; `None` when the rows were not counted.
        global_batch (`int`): sequences per optimizer step.
    """

    model: str
    method: str
    params: ParameterCounts
    tokens: TokenStats
    parallelism: Parallelism
    gpu: Gpu
    workload: Workload
    memory: MemoryPlan
    throughput: Throughput
    total_steps: int | None
    global_batch: int

    @property
    def remedies(self) -> list[str]:
        """What would lower the peak, among the settings this run does not use yet."""
        w, parallelism = self.workload, self.parallelism
        remedies = [] if w.flash else ["--attn_implementation flash_attention_2"]
        remedies += [] if w.checkpointing else ["--activation_checkpointing true"]
        remedies += [] if self.params.lora else ["LoRA (--use_peft true)"]
        remedies += [] if self.params.quantized else ["QLoRA (--load_in_4bit true)"] if self.params.lora else []
        if parallelism.kind != "zero3" and not self.params.quantized:  # bitsandbytes weights are not sharded
            remedies.append("ZeRO-3 over more GPUs (accelerate_configs/zero3.yaml)")
        elif parallelism.kind == "zero3" and not parallelism.offload_optimizer:
            remedies.append("CPU offload (accelerate_configs/zero3_offload.yaml)")
        remedies += ["--per_device_train_batch_size 1"] if w.batch_size > 1 else []
        return remedies + ["fewer crops (--num_crops)"]

    @property
    def warnings(self) -> list[str]:
        """One line per problem: the plan does not fit the GPU, or rows are dropped."""
        lines = []
        if self.memory.total > self.gpu.memory_gb:
            lines.append(
                f"WARNING: the plan needs {self.memory.total:.1f} GB per GPU, more than the {self.gpu.memory_gb:.0f} "
                f"GB of the GPU; try {', '.join(self.remedies)}."
            )
        if self.tokens.over_max_length and not self.tokens.assumed:
            lines.append(
                f"WARNING: {self.tokens.over_max_length} of {len(self.tokens.lengths)} rows are longer than "
                f"max_length={self.tokens.max_length} and will be dropped."
            )
        return lines


def _method(params: ParameterCounts, model_args: Phi3VModelConfig) -> str:
    if model_args.use_peft:
        kind = "QLoRA (4-bit NF4 base)" if model_args.load_in_4bit else "LoRA"
        return f"{kind} r={model_args.lora_r}: language model {params.language_trains}, vision {params.vision_trains}"
    return f"full fine-tuning: language model {params.language_trains}, vision tower {params.vision_trains}"


def _load_bytes(model_args: Phi3VModelConfig, config: PretrainedConfig) -> int:
    dtype = str(model_args.dtype if model_args.dtype not in (None, "auto") else config.dtype)
    return 4 if dtype.endswith("float32") else 2


def make_plan(
    config: PretrainedConfig,
    model_args: Phi3VModelConfig,
    training_args: TrainingArguments,
    tokens: TokenStats,
    parallelism: Parallelism,
    gpu: Gpu,
    preference: bool = False,
) -> RunPlan:
    """Plans a run: parameters on the meta device, memory at the longest row, time at the average row.

    Args:
        config ([`Phi3VConfig`]): the checkpoint's config.
        model_args ([`Phi3VModelConfig`]): dtype, attention, LoRA/QLoRA and freezing.
        training_args ([`~transformers.TrainingArguments`]): batch, accumulation, checkpointing, epochs or steps.
        tokens ([`TokenStats`]): the rows' lengths (or an assumed one).
        parallelism ([`Parallelism`]): the layout.
        gpu ([`Gpu`]): the GPU to check against.
        preference (`bool`, *optional*, defaults to `False`): DPO: chosen and rejected run together, the loss is not
            fused, and without LoRA a frozen reference copy is held.
    """
    params = count_parameters(config, model_args)
    workload = Workload(
        tokens=tokens.longest_kept,
        batch_size=training_args.per_device_train_batch_size * (2 if preference else 1),
        attention=model_args.attn_implementation or "sdpa",
        checkpointing=training_args.activation_checkpointing,
        load_bytes=_load_bytes(model_args, config),
        fused_loss=not preference,
        reference_copy=preference and not model_args.use_peft,
    )
    memory = estimate_memory(config, params, workload, parallelism)
    kept = tokens.kept or [tokens.longest_kept]
    flops = sum(sequence_flops(config, params, n, workload) for n in kept) / len(kept) * (2 if preference else 1)
    global_batch = (
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * parallelism.num_gpus
    )
    steps_per_epoch = 0 if tokens.assumed else math.ceil(len(tokens.kept) / global_batch)
    if training_args.max_steps > 0:
        total_steps = training_args.max_steps
    else:
        total_steps = None if tokens.assumed else math.ceil(training_args.num_train_epochs * steps_per_epoch)
    throughput = estimate_time(
        flops, workload, gpu.peak_flops, parallelism.num_gpus, steps_per_epoch, total_steps or 0, global_batch
    )
    return RunPlan(
        model=str(model_args.model_name_or_path),
        method=_method(params, model_args),
        params=params,
        tokens=tokens,
        parallelism=parallelism,
        gpu=gpu,
        workload=workload,
        memory=memory,
        throughput=throughput,
        total_steps=total_steps,
        global_batch=global_batch,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def format_plan(plan: RunPlan) -> str:
    """The plan as text: parameters, tokens, memory per GPU by term, time, then one line per warning."""
    p, t, m, w, speed = plan.params, plan.tokens, plan.memory, plan.workload, plan.throughput
    tokens = f"median {t.median:,.0f}, p95 {t.quantile(0.95):,.0f}, max {max(t.lengths):,.0f}"
    if t.assumed:
        tokens = f"{t.lengths[0]:,.0f} assumed ({t.source})"
    else:
        limit = f"max_length {t.max_length}" if t.max_length else "no max_length"
        tokens += f"; {t.over_max_length} of {len(t.lengths):,} rows over {limit} ({t.source})"
    attention = "flash" if w.flash else "eager"
    current = f"{attention}, {'' if w.checkpointing else 'no '}checkpointing"
    others = "; ".join(f"{label} {gb:.1f}" for label, gb in m.activation_options.items() if label != current)
    lines = [
        f"Pre-flight plan: {plan.model}, {plan.method}",
        f"  parameters: {p.total:,} total, {p.trainable:,} trainable ({p.trainable / p.total:.2%})"
        + (f", {p.quantized:,} in 4 bit" if p.quantized else ""),
        f"  tokens per sample: {tokens}",
        f"  parallelism: {plan.parallelism.describe()}",
        f"  peak memory per GPU (GB, at {w.batch_size} x {w.tokens:,.0f} tokens, {w.attention}):",
        f"    weights      {m.weights:6.1f}",
        f"    gradients    {m.gradients:6.1f}",
        f"    optimizer    {m.optimizer:6.1f}",
        f"    activations  {m.activations:6.1f}   ({current}; {others})",
        f"    overhead     {m.overhead:6.1f}   (CUDA context {CONTEXT_GB:.0f} + allocator {FRAGMENTATION:.0%})",
        f"    total        {m.total:6.1f}   of {plan.gpu.memory_gb:.0f} GB ({plan.gpu.name}, "
        + ("seen)" if plan.gpu.seen else "assumed)"),
        f"  time: {speed.flops_per_sequence / 1e12:.1f} TFLOP per sample; at {speed.mfu:.0%} MFU ({attention} "
        + f"attention) of {speed.peak_flops / 1e12:.0f} TFLOP/s x {plan.parallelism.num_gpus}: "
        + f"{speed.sequences_per_second:.2f} samples/s",
    ]
    if plan.total_steps:
        per_epoch = f"{speed.steps_per_epoch:,} steps per epoch, " if speed.steps_per_epoch else ""
        lines.append(
            f"  steps: {per_epoch}{plan.total_steps:,} in all at global batch {plan.global_batch} "
            f"-> about {_duration(speed.seconds)}"
        )
    else:
        lines.append(
            f"  steps: rows not counted; 1,000 samples take about {_duration(1000 / speed.sequences_per_second)}"
        )
    return "\n".join(lines + plan.warnings)
