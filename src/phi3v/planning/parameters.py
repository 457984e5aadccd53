"""Parameter counts of a run, exact: the model is built on the meta device from its config (no weights, no memory),
frozen and adapted by the same code as training (`freeze_parts`, `lora_config` and PEFT), then counted.
"""

from dataclasses import dataclass

import torch
from peft import get_peft_model
from torch import nn
from transformers import PretrainedConfig

from phi3v.modeling import Phi3VForCausalLM
from phi3v.training.configs import Phi3VModelConfig
from phi3v.training.model_loading import freeze_parts, lora_config


# bitsandbytes NF4: half a byte per weight, plus one fp32 absmax per block of 64 weights (no nested quantisation).
NF4_BYTES_PER_PARAM = 0.5 + 4 / 64


@dataclass(frozen=True)
class ParameterCounts:
    r"""
    What the run holds and trains, in parameters.

    Args:
        total (`int`): parameters of the base model (LoRA adapters not included).
        trainable (`int`): parameters with a gradient, adapters included.
        lora (`int`): LoRA adapter parameters (0 without `use_peft`).
        quantized (`int`): base parameters stored in 4 bit (QLoRA); the rest keep the load dtype.
        largest_unit (`int`): parameters of the largest module gathered at once under ZeRO-3 or FSDP (a decoder layer,
            or the LM head).
        language_matmul (`int`): weights of the decoder's and LM head's linear layers (2 FLOPs per weight and token).
        vision_matmul (`int`): weights of the CLIP layers Phi-3-V runs (2 FLOPs per weight and CLIP token).
        language_trains (`str`): `"full"`, `"adapter"` (LoRA only) or `"frozen"`: the decoder's backward cost.
        vision_trains (`str`): the same for the CLIP tower.
    """

    total: int
    trainable: int
    lora: int
    quantized: int
    largest_unit: int
    language_matmul: int
    vision_matmul: int
    language_trains: str
    vision_trains: str


def _trains(module: nn.Module) -> str:
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    if not trainable:
        return "frozen"
    return "adapter" if all("lora_" in name for name in trainable) else "full"


def count_parameters(config: PretrainedConfig, model_args: Phi3VModelConfig) -> ParameterCounts:
    """Builds `Phi3VForCausalLM(config)` on the meta device, freezes and adapts it as `load_model` and `SFTTrainer`
    would, and counts.

    Args:
        config ([`Phi3VConfig`]): the checkpoint's config (`AutoConfig.from_pretrained(model_name_or_path)`).
        model_args ([`Phi3VModelConfig`]): `use_peft`, the `lora_*` fields, the `freeze_*` switches, `load_in_4bit`.
    """
    with torch.device("meta"):
        model = Phi3VForCausalLM(config)
    model.freeze_unused_vision_parameters()
    freeze_parts(model, model_args)
    total = sum(p.numel() for p in model.parameters())
    unused = {id(p) for p in model.model.vision_embed_tokens.img_processor.vision_model.unused_parameters(
        config.image_feature_layer
    )}
    # bitsandbytes quantises every linear layer but the output head (transformers keeps it in the load dtype).
    quantized = 0
    if model_args.load_in_4bit:
        quantized = sum(
            m.weight.numel() for name, m in model.named_modules() if isinstance(m, nn.Linear) and name != "lm_head"
        )
    language_matmul = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, nn.Linear))
    language_matmul += model.lm_head.weight.numel()
    tower = model.model.vision_embed_tokens.img_processor
    vision_matmul = sum(
        m.weight.numel() for m in tower.modules() if isinstance(m, nn.Linear) and id(m.weight) not in unused
    )
    largest_unit = max(sum(p.numel() for p in model.model.layers[0].parameters()), model.lm_head.weight.numel())
    if model_args.use_peft:
        model = get_peft_model(model, lora_config(model_args, model))
        base = model.get_base_model()
        language, vision = base.model.layers, base.model.vision_embed_tokens.img_processor
    else:
        language, vision = model.model.layers, model.model.vision_embed_tokens.img_processor
    lora = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    return ParameterCounts(
        total=total,
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        lora=lora,
        quantized=quantized,
        largest_unit=largest_unit,
        language_matmul=language_matmul,
        vision_matmul=vision_matmul,
        language_trains=_trains(language),
        vision_trains=_trains(vision),
    )
