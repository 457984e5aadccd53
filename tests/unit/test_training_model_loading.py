"""Model loading for training: dtype and num_crops, LoRA on Phi-3-V's real module names, the freezing switches, and the
FSDP wrap classes."""

from pathlib import Path

import pytest
import torch
import yaml
from peft import get_peft_model
from trl import SFTConfig

from phi3v.training import (
    LANGUAGE_MODEL_LORA_TARGETS,
    PROJECTOR_LORA_TARGETS,
    VISION_TOWER_LORA_TARGETS,
    Phi3VModelConfig,
    load_model,
    load_processor,
    lora_config,
)


REPO_ROOT = Path(__file__).resolve().parents[2]
TOWER = "model.vision_embed_tokens.img_processor."
PROJECTOR = "model.vision_embed_tokens.img_projection."


@pytest.fixture
def training_args(tmp_path):
    return SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=True)


def model_args(checkpoint, **kwargs):
    return Phi3VModelConfig(model_name_or_path=str(checkpoint), **kwargs)


def trainable(model):
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def test_dtype_cache_and_num_crops(tiny_checkpoint, training_args):
    args = model_args(tiny_checkpoint, dtype="bfloat16", num_crops=16)
    model = load_model(args, training_args)
    assert model.dtype == torch.bfloat16
    assert model.config.use_cache is False  # activation checkpointing
    assert load_processor(args).image_processor.num_crops == 16
    assert load_processor(model_args(tiny_checkpoint)).image_processor.num_crops == 4  # the checkpoint's default


def test_the_clip_layer_phi3v_never_runs_is_frozen(tiny_checkpoint, training_args):
    model = load_model(model_args(tiny_checkpoint), training_args)
    frozen = {name for name, _ in model.named_parameters()} - trainable(model)
    last_layer = f"{TOWER}vision_model.encoder.layers.1."
    assert frozen and all(name.startswith((last_layer, f"{TOWER}vision_model.post_layernorm")) for name in frozen)


@pytest.mark.parametrize(
    "switch, frozen_prefix",
    [
        ("freeze_vision_tower", TOWER),
        ("freeze_projector", PROJECTOR),
        ("freeze_language_model", "model.layers."),
    ],
)
def test_freezing_switches(tiny_checkpoint, training_args, switch, frozen_prefix):
    model = load_model(model_args(tiny_checkpoint, **{switch: True}), training_args)
    names = trainable(model)
    assert not any(name.startswith(frozen_prefix) for name in names)
    assert names  # something still trains
    if switch == "freeze_language_model":
        assert not names & {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"}
        assert all(name.startswith("model.vision_embed_tokens.") for name in names)
    if switch == "freeze_projector":
        assert not names & {"model.vision_embed_tokens.glb_GN", "model.vision_embed_tokens.sub_GN"}


def test_freezing_everything_or_with_lora_is_refused(tiny_checkpoint, training_args):
    everything = dict(freeze_vision_tower=True, freeze_projector=True, freeze_language_model=True)
    with pytest.raises(ValueError, match="nothing to train"):
        load_model(model_args(tiny_checkpoint, **everything), training_args)
    with pytest.raises(ValueError, match="full fine-tuning"):
        load_model(model_args(tiny_checkpoint, use_peft=True, freeze_vision_tower=True), training_args)


def adapted_modules(model, args):
    peft_model = get_peft_model(model, lora_config(args, model))
    return {
        name.split(".lora_A")[0].removeprefix("base_model.model.")
        for name, _ in peft_model.named_parameters()
        if ".lora_A" in name
    }


def test_default_lora_targets_are_the_fused_language_model_layers(tiny_checkpoint, training_args):
    args = model_args(tiny_checkpoint, use_peft=True)
    assert args.lora_target_modules == LANGUAGE_MODEL_LORA_TARGETS
    modules = adapted_modules(load_model(args, training_args), args)
    expected = {
        f"model.layers.{layer}.{module}"
        for layer in range(2)
        for module in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
    }
    assert modules == expected


def test_vision_and_projector_lora_skip_the_unused_clip_layer(tiny_checkpoint, training_args):
    targets = LANGUAGE_MODEL_LORA_TARGETS + VISION_TOWER_LORA_TARGETS + PROJECTOR_LORA_TARGETS
    args = model_args(tiny_checkpoint, use_peft=True, lora_target_modules=targets)
    modules = adapted_modules(load_model(args, training_args), args)
    tower_layers = f"{TOWER}vision_model.encoder.layers."
    assert {f"{PROJECTOR}0", f"{PROJECTOR}2"} <= modules
    assert {f"{tower_layers}0.self_attn.q_proj", f"{tower_layers}0.mlp.fc2"} <= modules
    assert not any(name.startswith(f"{tower_layers}1.") for name in modules)  # Phi-3-V never runs the last layer
    assert len(modules) == 8 + 2 + 6


def test_lora_targets_that_match_nothing_fail(tiny_checkpoint, training_args):
    model = load_model(model_args(tiny_checkpoint), training_args)
    # A generic Llama list: Phi-3 fuses these projections, so they exist nowhere in the model.
    args = model_args(tiny_checkpoint, use_peft=True, lora_target_modules=["qkv_proj", "gate_proj", "up_proj"])
    with pytest.raises(ValueError, match=r"\['gate_proj', 'up_proj'\] match no linear layer"):
        lora_config(args, model)
    assert lora_config(model_args(tiny_checkpoint), model) is None  # no use_peft, no LoRA


def test_one_target_given_alone_still_matches_by_suffix(tiny_checkpoint, training_args):
    args = model_args(tiny_checkpoint, use_peft=True, lora_target_modules=["qkv_proj"])
    assert args.lora_target_modules == "qkv_proj"  # TRL's ModelConfig turns a one-item list into a string
    modules = adapted_modules(load_model(args, training_args), args)
    assert modules == {"model.layers.0.self_attn.qkv_proj", "model.layers.1.self_attn.qkv_proj"}


def test_quantisation_without_lora_is_refused(tiny_checkpoint, training_args):
    with pytest.raises(ValueError, match="use_peft"):
        load_model(model_args(tiny_checkpoint, load_in_4bit=True), training_args)


def test_fsdp_wraps_classes_that_exist_in_the_model(tiny_checkpoint, training_args):
    config = yaml.safe_load((REPO_ROOT / "accelerate_configs" / "fsdp.yaml").read_text())["fsdp_config"]
    wrapped = config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    model = load_model(model_args(tiny_checkpoint), training_args)
    classes = {type(module).__name__ for module in model.modules()}
    assert set(wrapped) == set(model._no_split_modules) == {"Phi3DecoderLayer", "CLIPEncoderLayer"}
    assert set(wrapped) <= classes
    assert config["fsdp_version"] == 2
