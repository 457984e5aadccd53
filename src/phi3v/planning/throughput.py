"""Training FLOPs per sequence and the time they take at a stated model FLOPs utilisation (MFU).

A matmul weight costs 2 FLOPs per token forward. The backward costs as much again for the input gradient (needed in
every layer above the first trainable one) and again for the weight gradient (trainable weights only); activation
checkpointing recomputes the forward of each layer that runs a backward. So a fully trained layer costs 4 forwards, a
LoRA-adapted one 3 (its base weights get no gradient), a frozen part with nothing trainable before it 1. Attention
scores cost `4 * tokens^2 * width` per layer forward (QK^T and PV); flash attention skips the causal half.
"""

from dataclasses import dataclass

from transformers import PretrainedConfig

from .memory import Workload, vision_tower_shape
from .parameters import ParameterCounts


# Model FLOPs utilisation per attention implementation, on an A100 at ~2.4k tokens per sequence. Eager attention
# writes and reads the (heads x tokens x tokens) scores in memory several times per layer, which the FLOP count does
# not see; its lower MFU stands for that. Set once against the Cookbook's full FT + FA2 throughput and its FA2/eager
# ratios (docs/plan.md).
MFU = {"flash": 0.38, "eager": 0.20}


@dataclass(frozen=True)
class Throughput:
    r"""
    Time of a run at the stated utilisation.

    Args:
        flops_per_sequence (`float`): training FLOPs of one average sequence (forward, recompute, backward).
        mfu (`float`): model FLOPs utilisation assumed.
        peak_flops (`float`): the GPU's dense bf16 peak, FLOP/s.
        sequences_per_second (`float`): over all GPUs.
        steps_per_epoch (`int`): optimizer steps per epoch.
        seconds (`float`): the whole run (all epochs, or `max_steps`).
    """

    flops_per_sequence: float
    mfu: float
    peak_flops: float
    sequences_per_second: float
    steps_per_epoch: int
    seconds: float


def _passes(backward: bool, trains_weights: bool, checkpointing: bool) -> int:
    return 1 + (backward and checkpointing) + backward + trains_weights


def sequence_flops(config: PretrainedConfig, params: ParameterCounts, tokens: float, workload: Workload) -> float:
    """Training FLOPs of one sequence of `tokens` tokens (its CLIP crops included).

    Args:
        config ([`Phi3VConfig`]): layers, widths.
        params ([`ParameterCounts`]): matmul weights and what trains.
        tokens (`float`): the sequence's length.
        workload ([`Workload`]): attention, checkpointing, reference model.
    """
    crops = tokens / config.img_processor["num_img_tokens"]
    vision_layers, vision_width, _, _, crop_tokens = vision_tower_shape(config)
    vision_backward = params.vision_trains != "frozen"
    language_backward = vision_backward or params.language_trains != "frozen"
    causal = 0.5 if workload.flash else 1.0  # eager computes the masked half too
    parts = [
        # (matmul FLOPs forward, attention FLOPs forward, needs backward, weights train)
        (
            2 * params.language_matmul * tokens,
            4 * causal * tokens**2 * config.hidden_size * config.num_hidden_layers,
            language_backward,
            params.language_trains == "full",
        ),
        (
            2 * params.vision_matmul * crops * crop_tokens,
            4 * crops * crop_tokens**2 * vision_width * vision_layers,
            vision_backward,
            params.vision_trains == "full",
        ),
    ]
    flops = 0.0
    for matmul, attention, backward, trains in parts:
        flops += matmul * _passes(backward, trains, workload.checkpointing)
        flops += attention * (1 + (backward and workload.checkpointing) + 2 * backward)
    flops += 6 * params.lora * tokens  # the adapters: forward, input and weight gradients
    if workload.reference_copy:  # DPO's frozen reference runs forward only
        flops += 2 * (params.language_matmul * tokens + params.vision_matmul * crops * crop_tokens)
    return flops


def estimate_time(
    flops_per_sequence: float,
    workload: Workload,
    peak_flops: float,
    num_gpus: int,
    steps_per_epoch: int,
    total_steps: int,
    sequences_per_step: int,
) -> Throughput:
    """Time at `MFU` of the attention implementation.

    Args:
        flops_per_sequence (`float`): average training FLOPs per sequence ([`sequence_flops`] averaged over rows).
        workload ([`Workload`]): its attention picks the MFU.
        peak_flops (`float`): the GPU's dense bf16 peak.
        num_gpus (`int`): data-parallel ranks.
        steps_per_epoch (`int`): optimizer steps per epoch.
        total_steps (`int`): optimizer steps of the run.
        sequences_per_step (`int`): the global batch.
    """
    mfu = MFU["flash" if workload.flash else "eager"]
    rate = peak_flops * mfu * num_gpus / flops_per_sequence
    seconds = total_steps * sequences_per_step / rate
    return Throughput(flops_per_sequence, mfu, peak_flops, rate, steps_per_epoch, seconds)
