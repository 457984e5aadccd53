"""Merge a LoRA adapter into its base and save a standalone checkpoint in the official Phi-3-V layout.

The output has the base checkpoint's `config.json` keys and safetensors tensor names (LoRA leaves no trace), the
processor (from the adapter directory when training saved one there), and a `generation_config.json` that stops on
`<|end|>` and `<|endoftext|>`. The base's remote-code files (`*.py`, which the Hub checkpoints' `auto_map` names) are
copied along, so the result also loads with `trust_remote_code=True`, and vLLM serves it as it serves the base.

The merge is computed in float32 and the merged weights are then cast to the base's dtype once, so a bf16 base does
not lose precision to a bf16 `W + BA`. For the 4.2B-parameter Phi-3-V that takes about 17 GB of CPU memory.
"""

import json
import shutil
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoConfig, AutoProcessor

from phi3v.inference.loading import (
    adapter_base_model,
    has_processor_files,
    is_adapter_dir,
    load_merged,
    root_checkpoint,
)
from phi3v.modeling.processing_phi3_v import stop_token_ids


SAFETENSORS_INDEX = "model.safetensors.index.json"
# transformers 5 no longer writes `_name_or_path`; it is bookkeeping, not part of the model's configuration.
IGNORED_CONFIG_KEYS = {"_name_or_path"}


def merge_lora(
    adapter_dir: str | Path,
    output_dir: str | Path,
    base_model: str | None = None,
    dtype: str | torch.dtype = "auto",
    max_shard_size: str = "5GB",
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

    Returns:
        `Path`: `output_dir`.
    """
    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    if not is_adapter_dir(adapter_dir):
        raise ValueError(f"{adapter_dir} is not a PEFT adapter directory (no adapter_config.json).")
    if output_dir.exists() and any(output_dir.iterdir()):
        raise FileExistsError(f"{output_dir} is not empty; refusing to overwrite it.")
    base = adapter_base_model(adapter_dir, base_model)
    checkpoint = root_checkpoint(base)  # a DPO adapter's base may be an SFT adapter: its checkpoint is further down
    if dtype == "auto":
        dtype = AutoConfig.from_pretrained(checkpoint).dtype or torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)

    model = load_merged(base, dtype=torch.float32)
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
