"""QLoRA in this process: the training model of a 4-bit run is NF4 on CPU, and DPO refuses an unmerged QLoRA adapter
(training, evaluation and merging end to end: tests/e2e/test_qlora.py)."""

import json

import bitsandbytes as bnb
import pytest
import torch
from torch import nn
from trl import SFTConfig

import phi3v  # noqa: F401
from phi3v.inference.quantization import BASE_QUANTIZATION_NAME
from phi3v.training import Phi3VModelConfig, load_model, load_sft_model

from ..evaluation_helpers import make_lora_adapter, one_torch_thread


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def linear_layers(model) -> dict[str, nn.Linear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def is_nf4(module: nn.Module) -> bool:
    return isinstance(module, bnb.nn.Linear4bit) and module.weight.quant_state.quant_type == "nf4"


def test_4bit_training_model_is_nf4_on_cpu(tiny_checkpoint, tmp_path):
    model_args = Phi3VModelConfig(
        model_name_or_path=str(tiny_checkpoint), dtype="float32", use_peft=True, load_in_4bit=True
    )
    model = load_model(model_args, SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False))
    linears = linear_layers(model)
    quantised = {name for name, module in linears.items() if is_nf4(module)}
    assert quantised == set(linears) - {"lm_head"}  # transformers keeps the output layer in full precision
    assert any(".img_projection." in name for name in quantised) and any(".qkv_proj" in name for name in quantised)
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}
    assert model.model.layers[0].self_attn.qkv_proj.compute_dtype == torch.float32


def test_dpo_refuses_to_start_from_an_unmerged_qlora_adapter(tiny_checkpoint, tmp_path):
    adapter = make_lora_adapter(tiny_checkpoint, tmp_path / "adapter")
    (adapter / BASE_QUANTIZATION_NAME).write_text(json.dumps({"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}))
    model_args = Phi3VModelConfig(model_name_or_path=str(adapter), dtype="float32", use_peft=True)
    with pytest.raises(ValueError, match="QLoRA adapter: merge it first"):
        load_sft_model(model_args, SFTConfig(output_dir=str(tmp_path / "dpo"), use_cpu=True, bf16=False))
