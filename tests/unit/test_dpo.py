"""The DPO stage in this process: the recipes parse, DPO starts from an SFT adapter merged into its base, answers are
scored and the verdict on the start model is given (the scripts end to end: tests/e2e/test_dpo.py)."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM
from trl import DPOConfig, TrlParser

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v.training import Phi3VModelConfig, Phi3VScriptArguments, parse_recipe


REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes"
DPO_RECIPES = sorted(path.relative_to(RECIPES).as_posix() for path in RECIPES.rglob("dpo-*.yaml"))


def parse(args):
    return parse_recipe(TrlParser((Phi3VScriptArguments, DPOConfig, Phi3VModelConfig)), args)


def test_the_dpo_recipes_exist():
    assert DPO_RECIPES == ["burberry/dpo-lora.yaml", "smoke/dpo-lora.yaml"]


@pytest.mark.parametrize("recipe", DPO_RECIPES)
def test_dpo_recipe_parses_positionally_and_with_config(recipe):
    path = str(RECIPES / recipe)
    cpu = ["--use_cpu", "true", "--bf16", "false"]
    script_args, training_args, model_args = parse([path, *cpu])
    _, config_training_args, config_model_args = parse(["--config", path, *cpu])
    assert model_args == config_model_args and training_args.to_dict() == config_training_args.to_dict()
    assert training_args.loss_type == ["sigmoid"] and training_args.beta == 0.1
    assert model_args.use_peft and "qkv_proj" in model_args.lora_target_modules
    assert script_args.dataset_name and training_args.max_length


def test_dpo_recipe_rejects_unknown_keys(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text((RECIPES / "smoke" / "dpo-lora.yaml").read_text() + "max_prompt_length: 128\n")
    with pytest.raises(ValueError, match="max_prompt_length"):
        parse([str(recipe)])


def test_dpo_starts_from_an_sft_adapter_merged_into_its_base(tiny_checkpoint, tmp_path):
    # The real recipe's SFT output is a LoRA adapter: DPO must start from base + adapter, merged (the reference).
    from peft import PeftModel

    from phi3v.inference.loading import load_for_inference
    from phi3v.training.model_loading import load_sft_model

    from ..evaluation_helpers import make_lora_adapter

    adapter = make_lora_adapter(tiny_checkpoint, tmp_path / "sft-adapter")
    model_args = Phi3VModelConfig(model_name_or_path=str(adapter), dtype="float32", use_peft=True)
    training_args = DPOConfig(output_dir=str(tmp_path / "dpo"), use_cpu=True, bf16=False, report_to="none")
    model = load_sft_model(model_args, training_args).eval()
    assert not isinstance(model, PeftModel)
    assert not any("lora" in name for name, _ in model.named_parameters())

    reference, processor = load_for_inference(adapter)
    prompt = "<|user|>\n<|image_1|>What is shown in this image?<|end|>\n<|assistant|>\n"
    inputs = processor(prompt, [Image.new("RGB", (120, 60), (30, 200, 30))])
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, atol=1e-5, rtol=1e-5)


def test_a_dpo_adapter_over_an_sft_adapter_loads_and_merges_as_a_chain(tiny_checkpoint, tmp_path):
    """What dpo.py saves when SFT was LoRA: an adapter whose base is the SFT adapter directory."""
    from peft import LoraConfig, get_peft_model

    from phi3v.inference.loading import load_for_inference, load_merged
    from phi3v.inference.merge import merge_lora

    from ..evaluation_helpers import LORA_TARGETS, make_lora_adapter

    sft_adapter = make_lora_adapter(tiny_checkpoint, tmp_path / "sft-adapter")
    sft_merged = load_merged(sft_adapter, dtype=torch.float32)
    sft_merged.config._name_or_path = sft_merged.name_or_path = str(sft_adapter)  # as load_sft_model does
    dpo_model = get_peft_model(sft_merged, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS))
    with torch.no_grad():
        for name, parameter in dpo_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.2, generator=torch.Generator().manual_seed(1))
    dpo_model.save_pretrained(tmp_path / "dpo-adapter")
    assert json.loads((tmp_path / "dpo-adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(sft_adapter)

    model, processor = load_for_inference(tmp_path / "dpo-adapter")
    prompt = "<|user|>\n<|image_1|>What is shown in this image?<|end|>\n<|assistant|>\n"
    inputs = processor(prompt, [Image.new("RGB", (120, 60), (30, 200, 30))])
    with torch.no_grad():
        expected = dpo_model.eval()(**inputs).logits
        torch.testing.assert_close(model(**inputs).logits, expected, atol=1e-5, rtol=1e-5)
        merged = AutoModelForCausalLM.from_pretrained(merge_lora(tmp_path / "dpo-adapter", tmp_path / "merged"))
        torch.testing.assert_close(merged(**inputs).logits, expected, atol=1e-4, rtol=1e-4)


def test_generated_answers_are_scored_with_the_catalogue_template_or_by_exact_match(monkeypatch):
    from phi3v.tasks import build_task
    from phi3v.tasks.config import TaskConfig
    from phi3v.training import GenerationValidation, generation_validation

    catalogue = build_task(TaskConfig(task="catalogue"))
    truth = catalogue.template.render({"title": "Red Tote", "category3_code": "bags", "full_price": 200.0})
    items = [{"images": [], "prompt": [], "references": [truth]}] * 2
    answers = ["Product: Red Tote, Category: shoes, Full Price: 150.00", "no idea"]
    monkeypatch.setattr(generation_validation, "answer_items", lambda *args: list(answers))
    scores = GenerationValidation(None, catalogue, items)(model=None)
    assert scores["parse_rate"] == 0.5 and scores["title_exact_match"] == 0.5 and scores["category_accuracy"] == 0.0
    assert scores["price_mape"] == pytest.approx((0.25 + 1.0) / 2)  # a missing price counts as $0
    assert "num_samples" not in scores and None not in scores.values()

    conversation = build_task(TaskConfig())
    items = [{"references": ["yes"]}, {"references": ["maybe", "No"]}]
    monkeypatch.setattr(generation_validation, "answer_items", lambda *args: ["Yes.", "no"])
    assert GenerationValidation(None, conversation, items)(model=None) == {"exact_match": 1.0, "edit_similarity": 1.0}
    with pytest.raises(ValueError, match="2 answers for 1 items"):
        catalogue.metrics(items[:1], answers)


def history(scores):
    return [{"step": step, "eval_price_mape": score, "eval_loss": 0.7} for step, score in scores.items()]


def test_the_verdict_says_whether_the_saved_checkpoint_beat_the_start_model():
    from phi3v.training import selection_verdict

    log = history({0: 0.20, 10: 0.25, 20: 0.15, 30: 0.18})
    verdict = selection_verdict(log, "price_mape", False, "out/checkpoint-20", 0.15, True, "outputs/sft")
    assert verdict["beats_start"] is True and verdict["saved_step"] == 20 and verdict["start_score"] == 0.20
    assert verdict["metric"] == "eval_price_mape" and "beats the start model" in verdict["message"]

    log = history({0: 0.10, 10: 0.25, 20: 0.15})
    verdict = selection_verdict(log, "eval_price_mape", False, "out/checkpoint-20", 0.15, True, "outputs/sft")
    assert verdict["beats_start"] is False
    assert (
        verdict["message"].startswith("No checkpoint beat the start model") and "Use outputs/sft" in verdict["message"]
    )

    # Higher is better: a tie is not a win. Without `load_best_model_at_end` the last step is what was saved.
    log = [{"step": 0, "eval_category_accuracy": 0.5}, {"step": 10, "eval_category_accuracy": 0.9}]
    log.append({"step": 20, "eval_category_accuracy": 0.5})
    verdict = selection_verdict(log, "category_accuracy", True, "out/checkpoint-10", 0.9, False, "sft")
    assert verdict["saved"] == "last step" and verdict["saved_step"] == 20 and verdict["beats_start"] is False

    # Without the start model's score (no `eval_on_start`) the verdict cannot say, and says so.
    verdict = selection_verdict(history({10: 0.2}), "price_mape", False, "out/checkpoint-10", 0.2, True, "sft")
    assert verdict["beats_start"] is None and "eval_on_start" in verdict["message"]
