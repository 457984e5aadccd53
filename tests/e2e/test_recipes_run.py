"""Every shipped recipe runs, as shipped, for 2 optimiser steps on CPU (see `tests/recipe_runs.py` for the only
things that change): the launch its header names, its precision, LoRA or QLoRA settings, frozen parts, activation
checkpointing, optimiser, scheduler and length limits. A run fails on a wrong key, a dtype clash or a LoRA target that
matches nothing (the script stops), on a frozen part that moved or a trained part that did not, and on a loss that
does not fall (measured in float32 on a fixed batch of training rows). A new recipe file is tested by existing.

Runs on CPU as far as CPU goes: DeepSpeed ZeRO-2/3 with one process on DeepSpeed's CPU accelerator, bf16 through
CPU autocast, 4-bit NF4 through bitsandbytes' CPU backend. Only `attn_implementation: flash_attention_2` cannot run on
CPU (flash-attn is CUDA-only); it becomes `sdpa`, the same attention (listed in recipes/README.md).
"""

import json
import math

import pytest
from safetensors.torch import load_file

from tests.recipe_runs import (
    RECIPES,
    STEPS,
    deepspeed_stage,
    dpo_probe_losses,
    is_dpo,
    log_history,
    run_recipe,
    sft_probe_losses,
    stage,
)


# Every subfolder: a new recipe file is tested by existing (GRPO's, `grpo-*`, in tests/e2e/test_grpo.py).
ALL_RECIPES = sorted(path for path in RECIPES.rglob("*.yaml") if stage(path) != "grpo")
TOWER = "model.vision_embed_tokens.img_processor."
# What each switch freezes, by the Cookbook's and our own definitions (phi3v_spec.md: `vision_embed_tokens` holds the
# CLIP tower, the projector, the separators and, in Microsoft's code, the token embedding as `wte`).
FROZEN_BY = {
    "freeze_vision_tower": (TOWER,),
    "freeze_projector": (
        "model.vision_embed_tokens.img_projection.",
        "model.vision_embed_tokens.glb_GN",
        "model.vision_embed_tokens.sub_GN",
    ),
    "freeze_token_embeddings": ("model.embed_tokens.",),
    "freeze_language_model": ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head."),
}


def never_run_clip_prefixes(num_clip_layers: int) -> tuple[str, ...]:
    """Phi-3-V reads CLIP's second-to-last layer: the last layer and `post_layernorm` never run, never train."""
    vision_model = f"{TOWER}vision_model."
    return (f"{vision_model}encoder.layers.{num_clip_layers - 1}.", f"{vision_model}post_layernorm.")


@pytest.mark.parametrize("recipe", ALL_RECIPES, ids=lambda path: path.relative_to(RECIPES).as_posix())
def test_recipe_runs_as_shipped(recipe, tiny_checkpoint, tmp_path):
    run = run_recipe(recipe, tiny_checkpoint, tmp_path)
    assert run.result.returncode == 0, run.result.stdout[-3000:] + run.result.stderr[-6000:]
    stage = deepspeed_stage(recipe)  # the launch's environment reached the script: its plan names the parallelism
    if stage is not None:
        assert f"parallelism: DeepSpeed ZeRO-{stage} on 1 GPU" in run.result.stdout, run.result.stdout[-3000:]

    history = log_history(run)
    assert max(entry["step"] for entry in history) == STEPS
    losses = [entry[key] for entry in history for key in ("loss", "train_loss") if key in entry]
    assert losses and all(math.isfinite(loss) for loss in losses)

    if is_dpo(recipe):
        before, after = dpo_probe_losses(run)
        assert before == pytest.approx(0.6931, abs=1e-3)  # policy == reference: log 2
        assert after < before, f"DPO loss on training pairs did not fall: {before} -> {after}"
    else:
        before, after, start, trained = sft_probe_losses(run)
        assert after < before, f"loss on training rows did not fall: {before} -> {after}"

    if run.model_args.use_peft:
        adapter_config = json.loads((run.output_dir / "adapter_config.json").read_text())
        assert set(adapter_config["target_modules"]) == set(run.model_args.lora_target_modules)
        assert (adapter_config["r"], adapter_config["lora_alpha"]) == (
            run.model_args.lora_r,
            run.model_args.lora_alpha,
        )
        weights = load_file(run.output_dir / "adapter_model.safetensors")
        for target in run.model_args.lora_target_modules:
            trained_b = [w for name, w in weights.items() if f"{target}.lora_B" in name]
            assert trained_b, f"no adapter on {target}"
            assert all(w.abs().sum() > 0 for w in trained_b), f"the adapter on {target} did not train"
        return

    # Full fine-tuning: the frozen parts kept their starting weights exactly; everything else moved.
    config = json.loads((run.start_model / "config.json").read_text())
    never_run = never_run_clip_prefixes(config["vision_config"]["num_hidden_layers"])
    frozen = never_run + tuple(
        prefix for switch, prefixes in FROZEN_BY.items() if getattr(run.model_args, switch) for prefix in prefixes
    )
    moved = {name for name in start if name in trained and not (trained[name] == start[name]).all()}
    assert not {name for name in moved if name.startswith(frozen)}, "a frozen part moved"
    still = {name for name in start if not name.startswith(frozen)} - moved
    assert not still, f"trainable parts did not move: {sorted(still)[:5]}"
