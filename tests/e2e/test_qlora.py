"""QLoRA end to end on CPU with the tiny model: a 4-bit NF4 base (bitsandbytes' CPU backend) and LoRA train through
`scripts/sft.py`, the adapter is evaluated on the 4-bit base by `scripts/evaluate.py`, and `scripts/merge_lora.py`
writes a full-precision model whose logits are the 4-bit base + adapter's (not the original base + adapter's).

The scripts run in this process (as `python scripts/<script>` would), which spares the imports of a new interpreter."""

import json
import runpy
import sys
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401
from phi3v.inference.loading import load_for_inference
from phi3v.inference.quantization import BASE_QUANTIZATION_NAME, recorded_base_quantization
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks.catalogue import prompt_messages

from ..conftest import built_once
from ..evaluation_helpers import REPO_ROOT, one_torch_thread
from ..safety_helpers import run_script_here
from ..unit.test_qlora import is_nf4, linear_layers


# The tiny model's lm_head is random and frozen under LoRA, so its logits stay small and the loss cannot fall far
# (it starts near ln(vocab) = 6.6): 80 steps take it from about 6.5 to 5.9 while the token accuracy goes from about
# 7% to about 50% (measured).
QLORA_OVERRIDES = [
    "--load_in_4bit", "true", "--bnb_4bit_quant_type", "nf4", "--use_peft", "true", "--freeze_vision_tower", "false",
    "--lora_alpha", "64", "--max_steps", "80", "--logging_steps", "10", "--learning_rate", "1e-2",
    "--eval_strategy", "no", "--save_strategy", "no",
]  # fmt: skip
# Merged (float32) against 4-bit base + adapter: about 5e-6 measured, on logits of magnitude up to ~1.
MERGE_TOLERANCE = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


@pytest.fixture(scope="session")
def qlora_run(tiny_checkpoint, synthetic_catalogue, tmp_path_factory):
    """The QLoRA run the tests read, made once and shared by the pytest-xdist workers."""

    def train(output_dir: Path) -> None:
        result = run_script_here(
            "sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint,
            "--dataset_name", synthetic_catalogue, "--output_dir", output_dir, *QLORA_OVERRIDES,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    return built_once(tmp_path_factory, "qlora-run", train)


@pytest.fixture(scope="module")
def inputs(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    images = [[Image.new("RGB", (120, 80), (200, 30, 30))], [Image.new("RGB", (64, 200), (20, 90, 160))]]
    return processor([build_prompt(processor, prompt_messages())] * 2, images=images, padding_side="left")


def test_qlora_trains_and_saves_an_adapter_over_the_4bit_base(qlora_run, tiny_checkpoint, inputs):
    state = json.loads((qlora_run / "trainer_state.json").read_text())
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    losses, accuracies = [entry["loss"] for entry in logs], [entry["mean_token_accuracy"] for entry in logs]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.4 and losses == sorted(losses, reverse=True), losses
    assert accuracies[0] < 0.15 and accuracies[-1] > 0.4, accuracies

    adapter_config = json.loads((qlora_run / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_checkpoint)
    adapter = load_file(qlora_run / "adapter_model.safetensors")
    assert any(".lora_B." in name and weights.abs().sum() > 0 for name, weights in adapter.items())
    quantization = recorded_base_quantization(qlora_run)
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_compute_dtype == torch.float32
    assert BASE_QUANTIZATION_NAME in (qlora_run / "README.md").read_text()

    # By default the adapter loads over its base quantised as in training; `load_in_4bit=False` over the original.
    adapted, _ = load_for_inference(qlora_run)
    assert isinstance(adapted, PeftModel)
    assert is_nf4(adapted.base_model.model.model.layers[0].self_attn.qkv_proj.base_layer)
    full_precision, _ = load_for_inference(qlora_run, load_in_4bit=False)
    assert not any(isinstance(module, bnb.nn.Linear4bit) for module in full_precision.modules())
    assert (logits(adapted, inputs) - logits(full_precision, inputs)).abs().max() > 1e-2  # NF4 rounding matters


def test_evaluate_runs_the_adapter_on_the_4bit_base(qlora_run, synthetic_catalogue, tmp_path, monkeypatch):
    output_dir = tmp_path / "eval"
    argv = [
        "evaluate.py", "--dataset", str(synthetic_catalogue), "--model", f"qlora={qlora_run}",
        "--output_dir", str(output_dir), "--limit", "4", "--max_new_tokens", "24", "--no_blank_control",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate.py"), run_name="__main__")
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["qlora"]["num_samples"] == 4
    assert {"parse_rate", "category_accuracy", "price_mape"} <= set(metrics["qlora"])
    predictions = (output_dir / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 4 and all(json.loads(line)["predictions"]["qlora"]["answer"] for line in predictions)


def test_merge_gives_the_4bit_model_with_the_adapter_in_full_precision(qlora_run, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "merged"
    monkeypatch.setattr(sys, "argv", ["merge_lora.py", "--adapter", str(qlora_run), "--output_dir", str(output_dir)])
    runpy.run_path(str(REPO_ROOT / "scripts" / "merge_lora.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "quantised to 4-bit then dequantised" in printed  # the base the adapter was trained on
    assert "tensor names match" in printed  # the base's layout: no quantisation state, no LoRA
    assert "quantization_config" not in json.loads((output_dir / "config.json").read_text())

    merged = AutoModelForCausalLM.from_pretrained(output_dir).eval()
    assert {type(module) for module in linear_layers(merged).values()} == {nn.Linear}
    assert {parameter.dtype for parameter in merged.parameters()} == {torch.float32}
    processor = AutoProcessor.from_pretrained(output_dir)
    images = [[Image.new("RGB", (120, 80), (200, 30, 30))], [Image.new("RGB", (64, 200), (20, 90, 160))]]
    inputs = processor([build_prompt(processor, prompt_messages())] * 2, images=images, padding_side="left")
    adapted_4bit, _ = load_for_inference(qlora_run)
    adapted_full, _ = load_for_inference(qlora_run, load_in_4bit=False)
    merged_logits = logits(merged, inputs)
    assert (merged_logits - logits(adapted_4bit, inputs)).abs().max() < MERGE_TOLERANCE
    assert (merged_logits - logits(adapted_full, inputs)).abs().max() > 1e-2  # not the original base + adapter
