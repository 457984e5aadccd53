"""The k-bit base of a QLoRA adapter: recorded when training saves the adapter, and loaded the same way to evaluate it
or merge it.

A QLoRA adapter is fitted to the *quantised* base (4-bit NF4 weights, dequantised on the fly in each forward), not to
the full-precision checkpoint that `base_model_name_or_path` in `adapter_config.json` names. Training therefore writes
the `BitsAndBytesConfig` it loaded the base with to `base_quantization_config.json` beside the adapter, and inference
and merging read it back: by default the base is quantised again with those settings (the same NF4 weights, since
quantisation is deterministic), so "base + adapter" is the model that was trained. bitsandbytes runs this on CPU as
well as on CUDA.
"""

import json
from pathlib import Path

import torch
from transformers import AutoConfig, BitsAndBytesConfig, PreTrainedModel


BASE_QUANTIZATION_NAME = "base_quantization_config.json"


def save_base_quantization(output_dir: str | Path, model: PreTrainedModel) -> bool:
    """Writes the quantisation config of a k-bit `model` (the base a QLoRA adapter trained on) to `output_dir`.

    Args:
        output_dir (`str` or `Path`): the training output directory (the adapter's).
        model ([`~transformers.PreTrainedModel`] or `PeftModel`): the trained model; a PEFT model reads its base's
            config.

    Returns:
        `bool`: whether the base was quantised (and the file written).
    """
    quantization = getattr(model.config, "quantization_config", None)  # set only on k-bit models
    if quantization is None:
        return False
    config = quantization if isinstance(quantization, dict) else quantization.to_dict()
    (Path(output_dir) / BASE_QUANTIZATION_NAME).write_text(json.dumps(config, indent=2, default=str) + "\n")
    return True


def recorded_base_quantization(adapter_dir: str | Path) -> BitsAndBytesConfig | None:
    """The `BitsAndBytesConfig` an adapter's base was trained with, or `None` (full-precision base, or not an adapter
    directory)."""
    path = Path(adapter_dir) / BASE_QUANTIZATION_NAME
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    config.pop("quant_method", None)  # a property of the class, not an argument
    return BitsAndBytesConfig.from_dict(config)


def base_quantization(
    path: str | Path, checkpoint: str | Path, load_in_4bit: bool | None = None, dtype: str | torch.dtype = "auto"
) -> BitsAndBytesConfig | None:
    """How to load the base of `path`: the recorded k-bit config, a fresh 4-bit NF4 one, or `None` (full precision).

    Args:
        path (`str` or `Path`): the model or adapter directory that may hold `base_quantization_config.json`.
        checkpoint (`str` or `Path`): the full checkpoint that would be quantised (its `dtype` is the compute dtype of
            a fresh config under `dtype="auto"`).
        load_in_4bit (`bool`, *optional*): `None` loads the base as it was trained (quantised when `path` records
            it); `True` quantises it (with the recorded settings, else NF4); `False` loads full-precision weights.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`): the compute dtype of a fresh config.
    """
    recorded = recorded_base_quantization(path)
    if load_in_4bit is False or (load_in_4bit is None and recorded is None):
        return None
    if recorded is not None:
        return recorded
    if dtype == "auto":
        dtype = AutoConfig.from_pretrained(str(checkpoint)).dtype or torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
