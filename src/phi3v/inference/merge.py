"""Merge a LoRA adapter into its base and save a standalone checkpoint in the official Phi-3-V layout.

The output has the base checkpoint's `config.json` keys and safetensors tensor names (LoRA leaves no trace), the
processor (from the adapter directory when training saved one there), and a `generation_config.json` that stops on
`<|end|>` and `<|endoftext|>`. The base's remote-code files (`*.py`, which the Hub checkpoints' `auto_map` names) are
copied along, so the result also loads with `trust_remote_code=True`, and vLLM serves it as it serves the base.

The merge is computed in float32 and the merged weights are then cast to the base's dtype once, so a bf16 base does
not lose precision to a bf16 `W + BA`. For the 4.2B-parameter Phi-3-V that takes about 17 GB of CPU memory.

A QLoRA adapter (`base_quantization_config.json` beside it, `phi3v.inference.quantization`) was fitted to the 4-bit
base, so by default that is what it is merged into: the base is quantised again with the recorded settings and every
`bnb.nn.Linear4bit` is dequantised into a plain float32 `nn.Linear` before the usual merge. The result is a
full-precision checkpoint that equals the 4-bit base + adapter up to float error, and *not* the original base +
adapter (the NF4 rounding of the base stays in it). `load_in_4bit=False` merges into the original weights instead.
(PEFT's own `merge_and_unload` on a 4-bit model would re-quantise `W + BA` to 4 bits, losing most of the update.)
"""

import json
import shutil
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

from phi3v.inference.loading import (
    adapter_base_model,
    has_processor_files,
    is_adapter_dir,
    load_merged,
    root_checkpoint,
)
from phi3v.inference.quantization import base_quantization
from phi3v.modeling.chat_format import stop_token_ids
from phi3v.outputs import user_entries


SAFETENSORS_INDEX = "model.safetensors.index.json"
# `_name_or_path` records where a config was loaded from, not what the model is: a base may hold it, our output not.
IGNORED_CONFIG_KEYS = {"_name_or_path"}


def merge_lora(
    adapter_dir: str | Path,
    output_dir: str | Path,
    base_model: str | None = None,
    dtype: str | torch.dtype = "auto",
    max_shard_size: str = "5GB",
    load_in_4bit: bool | None = None,
) -> Path:
    """Merges `adapter_dir` into its base model and saves model, processor and remote code to `output_dir`.

    Args:
        adapter_dir (`str` or `Path`): a PEFT LoRA adapter directory (`adapter_config.json`).
        output_dir (`str` or `Path`): where to write; must not exist or be empty.
        base_model (`str`, *optional*): the base checkpoint; defaults to the adapter's `base_model_name_or_path`.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`): dtype of the saved weights; `"auto"` keeps
            the base's (`torch_dtype` in its config).
        max_shard_size (`str`, *optional*, defaults to `"5GB"`): safetensors shard size (the Hub checkpoints use two
            shards of under 5 GB).
        load_in_4bit (`bool`, *optional*): `None` merges into the base as the adapter was trained on it (the
            dequantised 4-bit weights for a QLoRA adapter); `True` into the dequantised 4-bit base (the recorded
            settings, else NF4); `False` into the full-precision base.

    Returns:
        `Path`: `output_dir`.
    """
    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    if not is_adapter_dir(adapter_dir):
        raise ValueError(f"{adapter_dir} is not a PEFT adapter directory (no adapter_config.json).")
    if user_entries(output_dir):  # empty but for this project's marker
        raise FileExistsError(f"{output_dir} is not empty; refusing to overwrite it.")
    base = adapter_base_model(adapter_dir, base_model)
    checkpoint = root_checkpoint(base)  # a DPO adapter's base may be an SFT adapter: its checkpoint is further down
    if dtype == "auto":
        dtype = AutoConfig.from_pretrained(checkpoint).dtype or torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)

    quantization = base_quantization(adapter_dir, checkpoint, load_in_4bit, dtype=torch.float32)
    if quantization is None:
        model = load_merged(base, dtype=torch.float32)
    else:
        model = load_dequantized(base, quantization)
    model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.to(dtype)
    processor = AutoProcessor.from_pretrained(adapter_dir if has_processor_files(adapter_dir) else checkpoint)
    model.generation_config.eos_token_id = stop_token_ids(processor.tokenizer)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.save_pretrained(output_dir, max_shard_size=max_shard_size)
    processor.save_pretrained(output_dir)
    for source in local_checkpoint_dir(checkpoint).glob("*.py"):
        shutil.copy2(source, output_dir / source.name)
    return output_dir


def load_dequantized(checkpoint: str | Path, quantization_config):
    """`checkpoint` quantised with `quantization_config` (on CPU), then dequantised into float32 `nn.Linear` layers:
    the weights a QLoRA adapter was trained on, in a model that merges and saves in full precision.

    Args:
        checkpoint (`str` or `Path`): a full checkpoint (not an adapter).
        quantization_config ([`~transformers.BitsAndBytesConfig`]): the settings the adapter's base was trained with.
    """
    if is_adapter_dir(checkpoint):
        raise ValueError(f"The base {checkpoint} is itself an adapter: merge it first, then merge onto the result.")
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint, dtype=torch.float32, quantization_config=quantization_config, device_map={"": "cpu"}
    )
    # transformers' own dequantisation (bitsandbytes' `dequantize_4bit`), which also drops the quantisation config.
    return model.dequantize(dtype=torch.float32)


def local_checkpoint_dir(name_or_path: str | Path) -> Path:
    """A local directory with the checkpoint's small files (configs, remote code): the path itself, or the Hub
    snapshot of those files (the local cache when offline)."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    return Path(snapshot_download(str(name_or_path), allow_patterns=["*.json", "*.py"]))


def checkpoint_layout(checkpoint_dir: str | Path) -> tuple[set[str], set[str]]:
    """The `config.json` keys and the safetensors tensor names of a checkpoint directory (single file or sharded).

    Args:
        checkpoint_dir (`str` or `Path`): a directory with `config.json` and `model.safetensors` or its index.

    Returns:
        `tuple[set[str], set[str]]`: `(config keys, tensor names)`.
    """
    checkpoint_dir = Path(checkpoint_dir)
    config_keys = set(json.loads((checkpoint_dir / "config.json").read_text())) - IGNORED_CONFIG_KEYS
    index = checkpoint_dir / SAFETENSORS_INDEX
    if index.is_file():
        return config_keys, set(json.loads(index.read_text())["weight_map"])
    with safe_open(checkpoint_dir / "model.safetensors", framework="pt") as file:
        return config_keys, set(file.keys())


def layout_differences(reference_dir: str | Path, checkpoint_dir: str | Path) -> list[str]:
    """How `checkpoint_dir` departs from the layout of `reference_dir` (e.g. the base); empty when it does not.

    Args:
        reference_dir (`str` or `Path`): the checkpoint whose layout is expected (local directory).
        checkpoint_dir (`str` or `Path`): the checkpoint to check.

    Returns:
        `list[str]`: one line per difference: config keys or tensor names missing or extra.
    """
    reference_keys, reference_tensors = checkpoint_layout(reference_dir)
    keys, tensors = checkpoint_layout(checkpoint_dir)
    differences = []
    for what, expected, found in (("config key", reference_keys, keys), ("tensor", reference_tensors, tensors)):
        differences += [f"missing {what}: {name}" for name in sorted(expected - found)]
        differences += [f"extra {what}: {name}" for name in sorted(found - expected)]
    return differences
