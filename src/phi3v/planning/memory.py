"""Peak memory per GPU from first principles: weights, gradients, optimizer states, activations and a runtime overhead.

Every term is bytes per parameter or per activation element times a count; the counts come from the config (layers,
widths, heads, vocabulary) and the workload (tokens, crops, batch). The calibrated constants are
`CONTEXT_GB` and `FRAGMENTATION`; `docs/plan.md` holds the model against the Phi-3 Cookbook's eight A100 measurements.
"""

from dataclasses import dataclass, replace

from transformers import PretrainedConfig

from .parallelism import Parallelism
from .parameters import NF4_BYTES_PER_PARAM, ParameterCounts


# CUDA context and NCCL/cuBLAS workspaces per GPU, outside the allocator.
CONTEXT_GB = 1.0
# Memory the caching allocator reserves beyond what tensors hold (blocks split and cached between sequences of
# different lengths), as a share of the allocated peak. Peak figures from nvidia-smi or W&B are reserved memory.
# Both constants are set once for all rows against the Cookbook's eight A100 figures (docs/plan.md).
FRAGMENTATION = 0.15
# Elements saved per token by one decoder layer for its backward, in units of hidden size `h` and MLP width `I`: the
# two norm outputs, q/k/v, rotated q/k, the attention output (8h); gate/up, SiLU(gate) and the product fed to
# down_proj (4I).
LM_SAVED_H, LM_SAVED_I = 8, 4
# The same for a CLIP layer: norms, q/k/v, attention output (8h); fc1 output and its quick-GELU (2I).
VISION_SAVED_H, VISION_SAVED_I = 8, 2
# Eager attention holds, per score (head x query x key): the fp32 softmax output and its half-precision copy (saved,
# 6 bytes), and in backward the half gradient of the probabilities, its fp32 copy and the fp32 softmax gradient
# (10 bytes, transient). Flash attention holds none of them (it recomputes the scores in tiles).
EAGER_SAVED_BYTES, EAGER_BACKWARD_BYTES = 6, 10
# Unfused loss: half-precision logits, their fp32 copy, the saved log-softmax and its gradient, per logit.
LOGITS_BYTES = 2 + 4 + 4 + 4
FLASH = ("flash_attention_2", "flash_attention_3", "sdpa", "kernels-community/flash-attn")


@dataclass(frozen=True)
class Workload:
    r"""
    What one GPU runs per micro-step.

    Args:
        tokens (`float`): tokens of the longest sequence (peak memory follows the longest row).
        batch_size (`int`): sequences per GPU per micro-step (DPO: chosen and rejected count twice).
        attention (`str`): `attn_implementation`; `sdpa` is planned as flash attention (memory-efficient kernel).
        checkpointing (`bool`): activation checkpointing of the decoder and CLIP layers.
        load_bytes (`int`): bytes per weight as loaded (2 for bf16/fp16, 4 for fp32 with AMP).
        fused_loss (`bool`): the loss is computed in tiles without the full logits (TRL's fused LM head, SFT).
        reference_copy (`bool`): a second frozen copy of the model (DPO without LoRA).
    """

    tokens: float
    batch_size: int = 1
    attention: str = "flash_attention_2"
    checkpointing: bool = True
    load_bytes: int = 2
    fused_loss: bool = True
    reference_copy: bool = False

    @property
    def flash(self) -> bool:
        return self.attention in FLASH


@dataclass(frozen=True)
class MemoryPlan:
    r"""
    Peak memory per GPU, GB (10^9 bytes).

    Args:
        weights, gradients, optimizer, activations, overhead (`float`): the terms of `total`.
        activation_options (`dict[str, float]`): activations under other settings, by label (with and without
            checkpointing, eager and flash attention).
    """

    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float
    activation_options: dict[str, float]

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead


def vision_tower_shape(config: PretrainedConfig) -> tuple[int, int, int, int, int]:
    """(layers run, width, MLP width, heads, tokens per crop) of the CLIP tower."""
    vision = config.vision_tower_config()
    layers = config.image_feature_layer % (vision.num_hidden_layers + 1)
    return (
        layers,
        vision.hidden_size,
        vision.intermediate_size,
        vision.num_attention_heads,
        (vision.image_size // vision.patch_size) ** 2 + 1,
    )


def activation_bytes(
    config: PretrainedConfig, params: ParameterCounts, workload: Workload, residual_bytes: int
) -> float:
    """Activation memory of one micro-step at the backward's peak: the checkpointed layer boundaries plus one layer's
    recomputed working set (or every layer's saved tensors without checkpointing), for the decoder and the CLIP tower,
    plus the logits when the loss is not fused.

    Args:
        config ([`Phi3VConfig`]): widths, layers, heads and vocabulary.
        params ([`ParameterCounts`]): which parts need a backward.
        workload ([`Workload`]): tokens, batch, attention, checkpointing.
        residual_bytes (`int`): bytes of a residual-stream element (4 when fp32 weights run under autocast).
    """
    b, tokens = workload.batch_size, workload.tokens
    # 144 placeholder tokens per CLIP crop (576 patches merged 2x2), so a sequence runs at most tokens / 144 crops.
    crops = b * tokens / config.img_processor["num_img_tokens"]
    vision_layers, hv, iv, vision_heads, crop_tokens = vision_tower_shape(config)
    parts = [
        # (layers, tokens, width, saved elements per token, attention scores, needs backward)
        (
            config.num_hidden_layers,
            b * tokens,
            config.hidden_size,
            LM_SAVED_H * config.hidden_size + LM_SAVED_I * config.intermediate_size,
            b * config.num_attention_heads * tokens**2,
            params.language_trains != "frozen" or params.vision_trains != "frozen",
        ),
        (
            vision_layers,
            crops * crop_tokens,
            hv,
            VISION_SAVED_H * hv + VISION_SAVED_I * iv,
            crops * vision_heads * crop_tokens**2,
            params.vision_trains != "frozen",
        ),
    ]
    total = 0.0
    for layers, n, width, saved, scores, backward in parts:
        layer = n * saved * 2 + (0 if workload.flash else scores * EAGER_SAVED_BYTES)
        if not backward:  # forward only: one layer's tensors at a time
            total += layer
        elif workload.checkpointing:  # boundaries, one layer recomputed, its backward
            total += layers * n * width * residual_bytes + 2 * layer
            total += 0 if workload.flash else scores * EAGER_BACKWARD_BYTES
        else:
            total += layers * (layer + n * width * residual_bytes) + layer
            total += 0 if workload.flash else scores * EAGER_BACKWARD_BYTES
    if not workload.fused_loss:
        total += b * tokens * config.vocab_size * LOGITS_BYTES
    return total


def estimate_memory(
    config: PretrainedConfig, params: ParameterCounts, workload: Workload, parallelism: Parallelism
) -> MemoryPlan:
    """Peak memory per GPU of a training run.

    Weights: as loaded (DeepSpeed keeps a half-precision copy, FSDP2 under mixed precision an fp32 one), 4-bit layers
    at `NF4_BYTES_PER_PARAM`, LoRA adapters in fp32 (PEFT upcasts them); ZeRO-3 and FSDP shard them and gather two
    units at a time (the current and the prefetched). Gradients: DDP keeps `.grad` and its bucket copy; DeepSpeed a
    half-precision partition and its fp32 copy for the step (both in CPU memory with the optimizer offloaded), and
    the reduce bucket(s). Optimizer: AdamW's two moments, plus fp32 master weights under DeepSpeed (12 bytes per
    trainable parameter, sharded by ZeRO), plus the temporary of `torch.optim.AdamW`'s foreach step (the square root
    of the second moment).

    Args:
        config ([`Phi3VConfig`]): the checkpoint's config.
        params ([`ParameterCounts`]): from [`count_parameters`].
        workload ([`Workload`]): what a GPU runs per micro-step.
        parallelism ([`Parallelism`]): the layout.
    """
    n = parallelism.num_gpus
    half_storage = parallelism.deepspeed  # DeepSpeed casts the module to its half precision
    storage = 2 if half_storage else 4 if parallelism.kind == "fsdp" else workload.load_bytes
    base = params.total - params.quantized
    weights = base * storage + params.quantized * NF4_BYTES_PER_PARAM + params.lora * 4
    if workload.reference_copy:
        weights *= 2
    if parallelism.kind in ("zero3", "fsdp"):
        weights = (0 if parallelism.offload_params else weights / n) + 2 * params.largest_unit * 2

    trainable_base = params.trainable - params.lora
    if parallelism.deepspeed:
        # With the optimizer offloaded, the gradient partitions go to CPU memory too (ZeRO-Offload).
        gradients = 0.0 if parallelism.offload_optimizer else params.trainable * (2 + 4) / n
        buckets = 2 if parallelism.overlap_comm else 1
        gradients += min(parallelism.reduce_bucket, params.trainable) * 2 * buckets
        optimizer = 0.0 if parallelism.offload_optimizer else params.trainable * (12 + 4) / n
    elif parallelism.kind == "fsdp":
        gradients = params.trainable * 4 / n + params.largest_unit * 4
        optimizer = params.trainable * (8 + 4) / n
    else:
        copies = 2 if parallelism.kind == "ddp" else 1
        gradients = copies * (trainable_base * storage + params.lora * 4)
        optimizer = 3 * (trainable_base * storage + params.lora * 4)

    if trainable_base:  # one layer's weight gradients, before DDP or DeepSpeed copies them into a bucket
        gradients += params.largest_unit * storage
    # fp32 weights under autocast keep an fp32 residual stream; DeepSpeed and FSDP2 compute in half precision.
    residual = 4 if workload.load_bytes == 4 and parallelism.kind in ("single", "ddp") else 2
    activations = activation_bytes(config, params, workload, residual)
    options = {}
    for checkpointing in (True, False):
        for attention in ("flash_attention_2", "eager"):
            option = replace(workload, checkpointing=checkpointing, attention=attention)
            label = f"{'flash' if attention != 'eager' else 'eager'}, {'' if checkpointing else 'no '}checkpointing"
            options[label] = activation_bytes(config, params, option, residual) / 1e9
    return MemoryPlan(
        weights=weights / 1e9,
        gradients=gradients / 1e9,
        optimizer=optimizer / 1e9,
        activations=activations / 1e9,
        overhead=CONTEXT_GB + FRAGMENTATION * (weights + gradients + optimizer + activations) / 1e9,
        activation_options=options,
    )
