"""Loading Phi-3-V for training: the processor, the model (dtype, attention, 4/8-bit), LoRA and what is frozen.

Shared by `scripts/sft.py` and `scripts/dpo.py` (which starts from the SFT output: a model, or an adapter merged in). The model classes are this repository's native ones (registered with
transformers' Auto classes by `import phi3v`), so no `trust_remote_code` is involved.
"""

import logging
from dataclasses import replace

import torch
from accelerate import PartialState
from peft import LoraConfig, PeftModel
from torch import nn
from transformers import AutoModelForCausalLM, AutoProcessor, PreTrainedModel, ProcessorMixin, TrainingArguments
from trl import get_peft_config, get_quantization_config

from phi3v.errors import UsageError
from phi3v.inference.loading import adapter_base_model, is_adapter_dir
from phi3v.inference.quantization import recorded_base_quantization

from .configs import Phi3VModelConfig
from .lora_head import expose_merged_lora_head


logger = logging.getLogger(__name__)


def load_processor(model_args: Phi3VModelConfig) -> ProcessorMixin:
    """Loads the checkpoint's `Phi3VProcessor`, with `num_crops` overridden when the recipe sets it.

    Args:
        model_args ([`Phi3VModelConfig`]): `model_name_or_path`, `model_revision` and `num_crops` are read.
    """
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    if model_args.num_crops is not None:
        processor.image_processor.num_crops = model_args.num_crops
    return processor


def load_model(model_args: Phi3VModelConfig, training_args: TrainingArguments) -> PreTrainedModel:
    """Loads `Phi3VForCausalLM` for training and freezes what must not train.

    The CLIP layers that Phi-3-V never runs (its last layer and `post_layernorm`) are always frozen, so DDP and ZeRO
    see no parameter without a gradient. The `freeze_*` switches of `model_args` apply to full fine-tuning; with
    `use_peft`, PEFT freezes the whole base model and `lora_target_modules` says what trains.

    Args:
        model_args ([`Phi3VModelConfig`]): checkpoint, `dtype`, `attn_implementation`, `load_in_4bit`/`load_in_8bit`
            and the `freeze_*` switches.
        training_args ([`~transformers.TrainingArguments`]): `activation_checkpointing` turns the KV cache off.
    """
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
        raise UsageError("`load_in_4bit`/`load_in_8bit` quantise frozen weights: set `use_peft: true` (QLoRA).")
    model_kwargs = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": model_args.attn_implementation,
        "use_cache": not training_args.activation_checkpointing,
    }
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:
        # Passing None would not be the same as leaving it out; k-bit weights go to this process's device. On CPU
        # that is "cpu": a bare process index means a CUDA device (bitsandbytes quantises on CPU as well).
        model_kwargs["quantization_config"] = quantization_config
        on_cpu = training_args.use_cpu or not torch.cuda.is_available()
        model_kwargs["device_map"] = {"": "cpu" if on_cpu else PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **model_kwargs)
    model.freeze_unused_vision_parameters()
    freeze_parts(model, model_args)
    expose_merged_lora_head(model)  # so that TRL's fused LM head trains a LoRA on `lm_head` (the Cookbook's)
    return model


def freeze_parts(model: PreTrainedModel, model_args: Phi3VModelConfig) -> None:
    """Applies `freeze_vision_tower`, `freeze_projector`, `freeze_token_embeddings` and `freeze_language_model` (full
    fine-tuning only).

    The projector includes the learnable separators (`glb_GN`, `sub_GN`) that it reads with the CLIP features. The
    Cookbook's "frozen image model" (`vision_embed_tokens.requires_grad_(False)` in Microsoft's code, where the token
    embedding is registered inside the vision module as `wte`) is the tower, the projector and the token embeddings.
    """
    switches = [model_args.freeze_vision_tower, model_args.freeze_projector, model_args.freeze_language_model]
    if model_args.use_peft and (any(switches) or model_args.freeze_token_embeddings):
        raise UsageError(
            "The `freeze_*` switches apply to full fine-tuning. With `use_peft: true` the base model is frozen and "
            "`lora_target_modules` chooses what trains."
        )
    if all(switches):
        raise UsageError(
            "`freeze_vision_tower`, `freeze_projector` and `freeze_language_model` leave nothing to train."
        )
    image_embedding = model.model.vision_embed_tokens
    if model_args.freeze_vision_tower:
        image_embedding.img_processor.requires_grad_(False)
    if model_args.freeze_projector:
        image_embedding.img_projection.requires_grad_(False)
        image_embedding.glb_GN.requires_grad_(False)
        image_embedding.sub_GN.requires_grad_(False)
    if model_args.freeze_token_embeddings:
        model.model.embed_tokens.requires_grad_(False)
    if model_args.freeze_language_model:
        for module in (model.model.embed_tokens, model.model.layers, model.model.norm, model.lm_head):
            module.requires_grad_(False)


def lora_config(model_args: Phi3VModelConfig, model: PreTrainedModel) -> LoraConfig | None:
    """The LoRA config of the recipe, or `None` without `use_peft`.

    Every name in `lora_target_modules` must be the name, or a dotted suffix of the name, of at least one linear layer
    of `model`: a generic list (`q_proj`, `gate_proj`, ...) would otherwise silently adapt the wrong layers (the vision
    tower) or none. The CLIP layer Phi-3-V never runs gets no adapter: it would never receive a gradient.

    Args:
        model_args ([`Phi3VModelConfig`]): the `lora_*` (`lora_init_weights` included), `use_rslora` and `use_dora`
            fields.
        model ([`~transformers.PreTrainedModel`]): the loaded model, to check the target names against.
    """
    if not model_args.use_peft:
        return None
    targets = model_args.lora_target_modules
    targets = [targets] if isinstance(targets, str) else list(targets or [])  # TRL turns a one-item list into a str
    linears = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    tower = model.model.vision_embed_tokens.img_processor.vision_model
    unused = {id(parameter) for parameter in tower.unused_parameters(model.config.image_feature_layer)}
    unmatched = [t for t in targets if not any(name == t or name.endswith(f".{t}") for name in linears)]
    if not targets or unmatched:
        raise UsageError(
            f"`lora_target_modules` {unmatched or targets} match no linear layer of {type(model).__name__}. "
            "Phi-3-V's names: language model `qkv_proj o_proj gate_up_proj down_proj`; vision tower `q_proj k_proj "
            "v_proj out_proj fc1 fc2`; projector `img_projection.0 img_projection.2`."
        )
    if "lm_head" in targets and (model_args.lora_dropout or model_args.use_dora):
        # TRL's fused LM head reads the merged weight of an adapted `lm_head` (`lora_head.py`): no dropout, no DoRA.
        raise UsageError(
            "LoRA on `lm_head` trains through TRL's fused LM head with the merged weight: set `lora_dropout: 0.0` "
            "and `use_dora: false`, or leave `lm_head` out of `lora_target_modules`."
        )
    # TRL's config (r, alpha, dropout, rsLoRA, DoRA, target parameters, modules to save), with the checked target
    # names, the unused CLIP layer excluded, and PEFT's initialisation, which TRL's helper does not set.
    config = get_peft_config(model_args)
    config.target_modules = set(targets)  # a list: PEFT reads a lone string as a regular expression
    config.exclude_modules = [name for name, module in linears.items() if id(module.weight) in unused] or None
    config.init_lora_weights = {"true": True, "false": False}.get(
        model_args.lora_init_weights.lower(), model_args.lora_init_weights
    )
    return config


def load_sft_model(model_args: Phi3VModelConfig, training_args: TrainingArguments) -> PreTrainedModel:
    """Loads the SFT model to start DPO or GRPO from, with the same dtype, attention and freezing as SFT.

    An SFT adapter is merged into its base in memory: a new DPO or GRPO adapter then trains on top, and with that
    adapter disabled the model is exactly the SFT model, which TRL uses as the reference (no second copy in memory).

    Args:
        model_args ([`Phi3VModelConfig`]): `model_name_or_path` is the SFT output directory (model or adapter);
            `base_model`, when set, overrides an adapter's recorded base.
        training_args ([`~transformers.TrainingArguments`]): passed on to [`load_model`].
    """
    path = model_args.model_name_or_path
    if not is_adapter_dir(path):
        return load_model(model_args, training_args)
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise UsageError(
            "Merge the SFT adapter first (scripts/merge_lora.py), then start QLoRA DPO or GRPO from the merge."
        )
    if recorded_base_quantization(path) is not None:  # merged below into the full-precision base it did not train on
        raise UsageError(
            f"{path} is a QLoRA adapter: merge it first (scripts/merge_lora.py), then DPO or GRPO from the merge."
        )
    base = adapter_base_model(path, model_args.base_model)
    logger.info(f"Merging the SFT adapter {path} into its base {base}")
    model = load_model(replace(model_args, model_name_or_path=base, use_peft=False), training_args)
    model = PeftModel.from_pretrained(model, path).merge_and_unload()
    # A DPO or GRPO adapter trained on this merge records its base from here: the SFT adapter, not the adapter's base.
    model.config._name_or_path = model.name_or_path = str(path)
    return model
