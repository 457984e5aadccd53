"""Helpers shared by the evaluation tests: a LoRA adapter over the tiny checkpoint, as training would save it."""

import contextlib
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoProcessor


REPO_ROOT = Path(__file__).resolve().parent.parent
LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def make_lora_adapter(base_dir: Path, output_dir: Path, scale: float = 0.2) -> Path:
    """Saves a LoRA adapter over `base_dir` with its processor. `lora_B` is random (PEFT starts it at zero), so the
    adapter changes the outputs."""
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    model.save_pretrained(output_dir)
    AutoProcessor.from_pretrained(base_dir).save_pretrained(output_dir)
    return output_dir


@contextlib.contextmanager
def one_torch_thread():
    """Runs torch on one CPU thread, then restores the setting. Tiny models gain nothing from threads, and on a busy
    2-core machine OpenMP's spinning workers make their many small matmuls tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
