"""End-to-end runs of `scripts/sft.py recipes/smoke/sft-full.yaml` on CPU, shrunk by command-line overrides: the loss
falls, the output directory reloads and generates, LoRA with activation checkpointing trains and saves an adapter, and
an offline W&B run holds the predictions table. A killed run's resume is tests/e2e/test_safety_resume.py's.

The runs run in this process, as `python scripts/sft.py` would (the W&B run finished and W&B's per-process state torn
down after, as at the process's exit)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401
from phi3v.modeling.chat_format import build_prompt, stop_token_ids
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate, prompt_messages
from phi3v.tasks.config import load_task_config

from ..conftest import built_once
from ..safety_helpers import run_script_here


def run_smoke_sft(checkpoint, catalogue, output_dir, *overrides, env: dict | None = None):
    """`python scripts/sft.py recipes/smoke/sft-full.yaml ...` with `overrides`, in this process (which spares the ~14 s
    of imports of a new interpreter), with `env`'s variables set while it runs; it must succeed."""
    args = ["--model_name_or_path", checkpoint, "--dataset_name", catalogue, "--output_dir", output_dir, *overrides]
    result = run_script_here("sft.py", "recipes/smoke/sft-full.yaml", *args, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def logged(output_dir, key) -> list[float]:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return [entry[key] for entry in state["log_history"] if key in entry]


@pytest.fixture(scope="session")
def smoke_run(tiny_checkpoint, synthetic_catalogue, tmp_path_factory) -> Path:
    """One 30-step run for the tests that read it, made once and shared by the pytest-xdist workers."""

    def train(output_dir: Path) -> None:
        overrides = ["--max_steps", "30", "--logging_steps", "5", "--eval_steps", "15", "--save_steps", "15"]
        result = run_smoke_sft(tiny_checkpoint, synthetic_catalogue, output_dir, *overrides)
        assert f"saved to {output_dir}" in result.stdout
        assert "Pre-flight plan:" in result.stdout  # printed before the model loads

    return built_once(tmp_path_factory, "smoke-run", train)


def test_smoke_recipe_loss_falls(smoke_run):
    losses = logged(smoke_run, "loss")
    assert len(losses) == 6
    assert losses[-1] < 0.6 * losses[0], losses
    eval_losses = logged(smoke_run, "eval_loss")
    assert len(eval_losses) >= 2 and eval_losses[-1] < eval_losses[0]
    assert (smoke_run / "checkpoint-30" / "trainer_state.json").exists()


def test_smoke_output_has_model_processor_generation_config_and_card(smoke_run, tiny_checkpoint):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "README.md"):
        assert (smoke_run / name).exists(), name
    card = (smoke_run / "README.md").read_text()
    assert "trained with SFT" in card and "import phi3v" in card and f'from_pretrained("{smoke_run}")' in card
    assert (load_task_config(smoke_run).task, load_task_config(smoke_run).dataset_format) == ("catalogue", "catalogue")
    assert "huggingface.co/datasets" not in card  # a local catalogue is not linked to the Hub
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["use_cache"] is True
    trained, initial = load_file(smoke_run / "model.safetensors"), load_file(tiny_checkpoint / "model.safetensors")
    changed = {name for name in initial if not torch.equal(initial[name], trained[name])}
    assert "model.layers.0.self_attn.qkv_proj.weight" in changed
    assert "model.vision_embed_tokens.img_projection.0.weight" in changed
    assert not any(".img_processor." in name for name in changed)  # the smoke recipe freezes the random tower


def test_smoke_output_reloads_and_generates(smoke_run, synthetic_catalogue):
    import datasets

    processor = AutoProcessor.from_pretrained(smoke_run)
    model = AutoModelForCausalLM.from_pretrained(smoke_run)
    assert model.generation_config.eos_token_id == stop_token_ids(processor.tokenizer)
    rows = datasets.load_from_disk(str(synthetic_catalogue))["test"].select(range(2))
    prompts = [build_prompt(processor, prompt_messages())] * len(rows)
    inputs = processor(prompts, images=[[row["image"]] for row in rows], padding_side="left")
    output = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    answers = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert all(answer.startswith("Product:") for answer in answers), answers


def test_lora_with_activation_checkpointing_saves_a_loadable_adapter(tiny_checkpoint, synthetic_catalogue, tmp_path):
    output_dir = tmp_path / "lora"
    overrides = ["--use_peft", "true", "--freeze_vision_tower", "false", "--activation_checkpointing", "true"]
    overrides += ["--max_steps", "3", "--eval_strategy", "no", "--save_strategy", "no", "--learning_rate", "1e-2"]
    overrides += ["--num_crops", "2"]
    run_smoke_sft(tiny_checkpoint, synthetic_catalogue, output_dir, *overrides)
    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    assert adapter_config["base_model_name_or_path"] == str(tiny_checkpoint)
    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert all(".img_processor." not in name for name in adapter)  # the tower stays frozen, without adapters
    assert any(".lora_B." in name and weights.abs().sum() > 0 for name, weights in adapter.items())  # it trained
    assert not (output_dir / "model.safetensors").exists()

    processor = AutoProcessor.from_pretrained(output_dir)
    assert processor.image_processor.num_crops == 2  # the resolution trained at travels with the output
    model = AutoModelForCausalLM.from_pretrained(output_dir)  # the base through the adapter's config, then the adapter
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert json.loads((output_dir / "generation_config.json").read_text())["eos_token_id"] == stop_token_ids(
        processor.tokenizer
    )
    inputs = processor("<|user|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n")
    assert model.generate(**inputs, max_new_tokens=5, do_sample=False).shape[1] > inputs["input_ids"].shape[1]


def test_offline_wandb_run_holds_the_predictions_table(tiny_checkpoint, synthetic_catalogue, tmp_path, monkeypatch):
    import datasets

    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}
    for variable in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        env[variable] = str(tmp_path / variable.lower())
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # no login
    overrides = ["--report_to", "wandb", "--max_steps", "4", "--eval_steps", "2", "--eval_predictions", "3"]
    overrides += ["--save_strategy", "no", "--run_name", "smoke-wandb-test"]
    run_smoke_sft(tiny_checkpoint, synthetic_catalogue, tmp_path / "run", *overrides, env=env)

    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    tables = sorted((run_dir / "files" / "media" / "table" / "eval").glob("predictions_*.table.json"))
    assert len(tables) >= 2  # at steps 2 and 4 (and the final evaluation)
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["image", "reference", "prediction", "price_error"]
    rows = datasets.load_from_disk(str(synthetic_catalogue))["validation"].select(range(3))
    assert [row[1] for row in table["data"]] == [AnswerTemplate(DEFAULT_ANSWER_TEMPLATE).render(row) for row in rows]
    assert all(isinstance(row[2], str) for row in table["data"])
