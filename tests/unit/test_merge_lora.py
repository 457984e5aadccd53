"""Loading the three model forms, and merging a LoRA adapter into a standalone checkpoint in the official layout."""

import json
import runpy
import sys

import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

from phi3v.inference.loading import adapter_base_model, is_adapter_dir, load_for_inference
from phi3v.inference.merge import checkpoint_layout, layout_differences, merge_lora
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks.catalogue import prompt_messages

from ..evaluation_helpers import REPO_ROOT, make_lora_adapter, one_torch_thread


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def adapter_dir(tiny_checkpoint, tmp_path_factory):
    """A LoRA adapter over the tiny checkpoint that changes its outputs, saved with its processor."""
    return make_lora_adapter(tiny_checkpoint, tmp_path_factory.mktemp("adapter") / "lora")


@pytest.fixture(scope="module")
def merged_dir(adapter_dir, tmp_path_factory):
    return merge_lora(adapter_dir, tmp_path_factory.mktemp("merged") / "merged")


@pytest.fixture(scope="module")
def inputs(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    images = [[Image.new("RGB", (120, 80), (200, 30, 30))], [Image.new("RGB", (64, 200), (20, 90, 160))]]
    return processor([build_prompt(processor, prompt_messages())] * 2, images=images, padding_side="left")


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def test_adapter_dir_names_its_base(adapter_dir, tiny_checkpoint):
    assert is_adapter_dir(adapter_dir) and not is_adapter_dir(tiny_checkpoint)
    assert adapter_base_model(adapter_dir) == str(tiny_checkpoint)
    assert adapter_base_model(adapter_dir, base_model="elsewhere") == "elsewhere"


def test_adapter_loads_as_base_plus_adapter(adapter_dir, tiny_checkpoint, inputs):
    adapted, processor = load_for_inference(adapter_dir)
    base, _ = load_for_inference(tiny_checkpoint)
    assert isinstance(adapted, PeftModel) and not adapted.training
    assert processor.tokenizer.chat_template == AutoProcessor.from_pretrained(tiny_checkpoint).chat_template
    assert not torch.allclose(logits(adapted, inputs), logits(base, inputs), atol=1e-3)  # the adapter matters


def test_base_model_override_and_misuse(adapter_dir, tiny_checkpoint, inputs):
    adapted, _ = load_for_inference(adapter_dir, base_model=str(tiny_checkpoint))
    assert isinstance(adapted, PeftModel)
    with pytest.raises(ValueError, match="not a LoRA adapter"):
        load_for_inference(tiny_checkpoint, base_model=str(tiny_checkpoint))


def test_merged_checkpoint_has_the_base_layout(merged_dir, tiny_checkpoint):
    config_keys, tensor_names = checkpoint_layout(merged_dir)
    assert (config_keys, tensor_names) == checkpoint_layout(tiny_checkpoint)
    assert not any("lora" in name for name in tensor_names)
    assert layout_differences(tiny_checkpoint, merged_dir) == []
    base_config = json.loads((tiny_checkpoint / "config.json").read_text())
    merged_config = json.loads((merged_dir / "config.json").read_text())
    assert merged_config == base_config
    for name in ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (merged_dir / name).is_file()
    assert not (merged_dir / "adapter_config.json").exists()


def test_merge_then_reload_gives_base_plus_adapter_logits(merged_dir, adapter_dir, inputs):
    adapted, _ = load_for_inference(adapter_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    torch.testing.assert_close(logits(merged, inputs), logits(adapted, inputs), atol=1e-5, rtol=1e-5)


def test_merged_generation_config_stops_on_both_tokens(merged_dir):
    processor = AutoProcessor.from_pretrained(merged_dir)
    tokenizer = processor.tokenizer
    generation_config = json.loads((merged_dir / "generation_config.json").read_text())
    assert generation_config["eos_token_id"] == [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.eos_token_id]


def test_merge_saves_the_requested_dtype(adapter_dir, tmp_path):
    merged = merge_lora(adapter_dir, tmp_path / "bf16", dtype="bfloat16")
    assert json.loads((merged / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(merged).dtype == torch.bfloat16


def test_merge_refuses_a_non_empty_output_dir(adapter_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        merge_lora(adapter_dir, tmp_path)


def test_merge_script(adapter_dir, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "merged"
    argv = ["merge_lora.py", "--adapter", str(adapter_dir), "--output_dir", str(output_dir)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO_ROOT / "scripts" / "merge_lora.py"), run_name="__main__")
    assert "tensor names match" in capsys.readouterr().out
    assert layout_differences(tiny_checkpoint, output_dir) == []
