"""Parameter counts of a run, exact: the model is built on the meta device from its config (no weights, no memory),
frozen by the same code as training (`freeze_parts`), and its LoRA adapters counted on the linear layers the run's
`lora_config` matches: `r * (in + out)` each (plus `out` for DoRA's magnitude), which is what PEFT adds
(`tests/unit/test_plan.py` checks it against PEFT).
"""

from dataclasses import dataclass

import torch
from peft import LoraConfig
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


def _adapted(config: LoraConfig, name: str) -> bool:
    """Whether PEFT puts an adapter on the linear layer `name` (a target name or dotted suffix, not excluded)."""
    matches = any(name == t or name.endswith(f".{t}") for t in config.target_modules)
    return matches and name not in (config.exclude_modules or [])


def count_parameters(config: PretrainedConfig, model_args: Phi3VModelConfig) -> ParameterCounts:
    """Builds `Phi3VForCausalLM(config)` on the meta device, freezes it as `load_model` does and counts, with the LoRA
    adapters `SFTTrainer` would add.

    Args:
        config ([`Phi3VConfig`]): the checkpoint's config (`AutoConfig.from_pretrained(model_name_or_path)`).
        model_args ([`Phi3VModelConfig`]): `use_peft`, the `lora_*` fields, the `freeze_*` switches, `load_in_4bit`.
    """
    with torch.device("meta"):
        model = Phi3VForCausalLM(config)
    model.freeze_unused_vision_parameters()
    freeze_parts(model, model_args)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    tower = model.model.vision_embed_tokens.img_processor
    unused = {id(p) for p in tower.vision_model.unused_parameters(config.image_feature_layer)}
    # bitsandbytes quantises every linear layer but the output head (transformers keeps it in the load dtype).
    quantized = sum(m.weight.numel() for n, m in linears.items() if n != "lm_head") if model_args.load_in_4bit else 0
    language_matmul = model.lm_head.weight.numel()
    language_matmul += sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, nn.Linear))
    vision_matmul = sum(
        m.weight.numel() for m in tower.modules() if isinstance(m, nn.Linear) and id(m.weight) not in unused
    )
    largest_unit = max(sum(p.numel() for p in model.model.layers[0].parameters()), model.lm_head.weight.numel())
    lora, language_trains, vision_trains = 0, _trains(model.model.layers), _trains(tower)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if model_args.use_peft:
        peft = lora_config(model_args, model)
        adapted = {name: m for name, m in linears.items() if _adapted(peft, name)}
        per_layer = {
            n: peft.r * (m.in_features + m.out_features) + peft.use_dora * m.out_features for n, m in adapted.items()
        }
        lora = sum(per_layer.values())
        # `lora_modules_to_save` train whole (a copy each); everything else of the base is frozen.
        saved = [m for n, m in model.named_modules() if any(n.endswith(t) for t in peft.modules_to_save or [])]
        trainable = lora + sum(p.numel() for m in saved for p in m.parameters())
        language_trains = "adapter" if any(n.startswith("model.layers.") for n in adapted) else "frozen"
        vision_trains = "adapter" if any(".img_processor." in n for n in adapted) else "frozen"
    return ParameterCounts(
        total=sum(p.numel() for p in model.parameters()),
        trainable=trainable,
        lora=lora,
        quantized=quantized,
        largest_unit=largest_unit,
        language_matmul=language_matmul,
        vision_matmul=vision_matmul,
        language_trains=language_trains,
        vision_trains=vision_trains,
    )


def _trains(module: nn.Module) -> str:
    """`"full"` when some base weight of `module` trains, else `"frozen"`."""
    return "full" if any(p.requires_grad for p in module.parameters()) else "frozen"
