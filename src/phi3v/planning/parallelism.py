"""How a run spreads over GPUs, read from an accelerate config file or from the environment `accelerate launch` sets,
and the GPU it runs on (memory and peak bf16 FLOP/s)."""

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import yaml


# Dense bf16 tensor-core peak, FLOP/s (vendor data sheets; H100/H200 SXM).
PEAK_BF16_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "L40S": 362e12, "A10": 125e12, "V100": 125e12}
DEFAULT_GPU = "A100"
DEFAULT_GPU_MEMORY_GB = 80.0
# DeepSpeed's default `reduce_bucket_size` (elements), which accelerate's generated ZeRO configs keep.
DEEPSPEED_BUCKET = 5e8


@dataclass(frozen=True)
class Parallelism:
    r"""
    The data-parallel layout of a run.

    Args:
        kind (`str`): `"single"`, `"ddp"`, `"fsdp"`, `"zero2"` or `"zero3"`.
        num_gpus (`int`): data-parallel ranks.
        offload_optimizer (`bool`): DeepSpeed keeps optimizer states (and their fp32 gradients) in CPU memory.
        offload_params (`bool`): DeepSpeed ZeRO-3 keeps the parameters in CPU memory.
        reduce_bucket (`float`): DeepSpeed gradient bucket, in elements.
        overlap_comm (`bool`): DeepSpeed overlaps reduction with backward, with two buckets instead of one (its
            default for ZeRO-3; the Cookbook sets it for ZeRO-2).
        source (`str`): where the layout was read from, for the report.
    """

    kind: str = "single"
    num_gpus: int = 1
    offload_optimizer: bool = False
    offload_params: bool = False
    reduce_bucket: float = DEEPSPEED_BUCKET
    overlap_comm: bool = False
    source: str = "single GPU"

    @property
    def deepspeed(self) -> bool:
        return self.kind in ("zero2", "zero3")

    def describe(self) -> str:
        names = {
            "single": "one GPU",
            "ddp": "DDP",
            "fsdp": "FSDP",
            "zero2": "DeepSpeed ZeRO-2",
            "zero3": "DeepSpeed ZeRO-3",
        }
        offload = [w for w, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        text = f"{names[self.kind]} on {self.num_gpus} GPU{'s' if self.num_gpus > 1 else ''}"
        return text + (f", {' and '.join(offload)} offloaded to CPU" if offload else "") + f" ({self.source})"


def _layout(distributed: str, stage: int | None, num_gpus: int) -> str:
    if distributed == "DEEPSPEED":
        return "zero3" if stage == 3 else "zero2"
    if distributed == "FSDP":
        return "fsdp"
    return "ddp" if num_gpus > 1 else "single"


def parallelism_from_config(path: str | Path, num_gpus: int | None = None) -> Parallelism:
    """Reads an accelerate config file (`accelerate_configs/*.yaml`).

    Args:
        path (`str` or `Path`): the YAML file.
        num_gpus (`int`, *optional*): overrides its `num_processes` (as `accelerate launch --num_processes` does).
    """
    config = yaml.safe_load(Path(path).read_text())
    deepspeed = config.get("deepspeed_config") or {}
    num_gpus = num_gpus or int(config.get("num_processes", 1))
    stage = deepspeed.get("zero_stage")
    return Parallelism(
        kind=_layout(str(config.get("distributed_type", "NO")), stage, num_gpus),
        num_gpus=num_gpus,
        offload_optimizer=deepspeed.get("offload_optimizer_device", "none") not in ("none", None),
        offload_params=deepspeed.get("offload_param_device", "none") not in ("none", None),
        overlap_comm=stage == 3,
        source=str(path),
    )


def parallelism_from_environment() -> Parallelism:
    """The layout `accelerate launch` passes to its processes (`ACCELERATE_*`, `WORLD_SIZE`); one GPU without it."""
    env = os.environ
    num_gpus = int(env.get("WORLD_SIZE", 1))
    distributed = "DEEPSPEED" if env.get("ACCELERATE_USE_DEEPSPEED") == "true" else "NO"
    distributed = "FSDP" if env.get("ACCELERATE_USE_FSDP") == "true" else distributed
    stage = int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", 2))
    return Parallelism(
        kind=_layout(distributed, stage, num_gpus),
        num_gpus=num_gpus,
        offload_optimizer=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") != "none",
        offload_params=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") != "none",
        overlap_comm=stage == 3,
        source="accelerate launch environment" if num_gpus > 1 or distributed != "NO" else "single GPU",
    )


def with_gpus(parallelism: Parallelism, num_gpus: int | None) -> Parallelism:
    """The same layout on `num_gpus` ranks (one GPU stays `single`, more without sharding become DDP)."""
    if num_gpus is None:
        return parallelism
    kind = parallelism.kind
    if kind in ("single", "ddp"):
        kind = "ddp" if num_gpus > 1 else "single"
    return replace(parallelism, kind=kind, num_gpus=num_gpus)


@dataclass(frozen=True)
class Gpu:
    r"""
    The GPU a plan is checked against.

    Args:
        name (`str`): a family in `PEAK_BF16_FLOPS` (`A100`, `H100`, ...).
        memory_gb (`float`): memory per GPU, GB (10^9 bytes).
        peak_flops (`float`): dense bf16 peak, FLOP/s.
        seen (`bool`): whether torch saw it, or it is assumed.
    """

    name: str = DEFAULT_GPU
    memory_gb: float = DEFAULT_GPU_MEMORY_GB
    peak_flops: float = PEAK_BF16_FLOPS[DEFAULT_GPU]
    seen: bool = False


def gpu_family(device_name: str) -> str:
    """`"H100"` from `"NVIDIA H100 80GB HBM3"`; the default family when none matches."""
    for family in PEAK_BF16_FLOPS:
        if re.search(rf"\b{family}", device_name):
            return family
    return DEFAULT_GPU


def detect_gpu(memory_gb: float | None = None, name: str | None = None) -> Gpu:
    """The GPU torch sees (else an A100-80GB, as assumed), with `memory_gb` and `name` overriding what is seen.

    Args:
        memory_gb (`float`, *optional*): memory per GPU to plan for, GB.
        name (`str`, *optional*): GPU family for the time estimate (`A100`, `H100`, ...).
    """
    seen_name, seen_memory, seen = DEFAULT_GPU, DEFAULT_GPU_MEMORY_GB, False
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        seen_name, seen_memory, seen = gpu_family(properties.name), properties.total_memory / 1e9, True
    family = name or seen_name
    return Gpu(family, memory_gb or seen_memory, PEAK_BF16_FLOPS.get(family, PEAK_BF16_FLOPS[DEFAULT_GPU]), seen)
