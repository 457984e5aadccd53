"""The DPO stage on CPU: recipes parse, then smoke SFT -> on-policy pairs -> smoke DPO -> one report for SFT and DPO."""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor
from trl import DPOConfig, TrlParser

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v.training import Phi3VModelConfig, Phi3VScriptArguments, parse_recipe


REPO_ROOT = Path(__file__).resolve().parents[2]
DPO_RECIPES = sorted(path.name for path in (REPO_ROOT / "recipes").glob("*dpo*.yaml"))


def parse(args):
    return parse_recipe(TrlParser((Phi3VScriptArguments, DPOConfig, Phi3VModelConfig)), args)


def test_the_dpo_recipes_exist():
    assert DPO_RECIPES == ["burberry-dpo.yaml", "smoke-dpo.yaml"]


@pytest.mark.parametrize("recipe", DPO_RECIPES)
def test_dpo_recipe_parses_positionally_and_with_config(recipe):
    path = str(REPO_ROOT / "recipes" / recipe)
    cpu = ["--use_cpu", "true", "--bf16", "false"]
    script_args, training_args, model_args = parse([path, *cpu])
    _, config_training_args, config_model_args = parse(["--config", path, *cpu])
    assert model_args == config_model_args and training_args.to_dict() == config_training_args.to_dict()
    assert training_args.loss_type == ["sigmoid"] and training_args.beta == 0.1
    assert model_args.use_peft and "qkv_proj" in model_args.lora_target_modules
    assert script_args.dataset_name and training_args.max_length


def test_dpo_recipe_rejects_unknown_keys(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text((REPO_ROOT / "recipes" / "smoke-dpo.yaml").read_text() + "max_prompt_length: 128\n")
    with pytest.raises(ValueError, match="max_prompt_length"):
        parse([str(recipe)])


def run(*command, timeout=600):
    result = subprocess.run(
        [sys.executable, *command], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def short_sft_and_pairs(tiny_checkpoint, synthetic_catalogue, tmp_path_factory):
    """A short smoke SFT, so the model answers in the right format but still makes mistakes, and its on-policy pairs."""
    root = tmp_path_factory.mktemp("sft-and-pairs")
    sft, pairs = root / "sft", root / "pairs"
    run("scripts/sft.py", "recipes/smoke.yaml", "--model_name_or_path", str(tiny_checkpoint), "--dataset_name",
        str(synthetic_catalogue), "--output_dir", str(sft), "--max_steps", "40", "--eval_strategy", "no",
        "--save_strategy", "no")  # fmt: skip
    run(
        "scripts/make_preferences.py",
        "--dataset",
        str(synthetic_catalogue),
        "--model",
        str(sft),
        "--output",
        str(pairs),
    )
    return sft, pairs


def evaluations(history: list[dict], key: str) -> dict[int, float]:
    return {entry["step"]: entry[key] for entry in history if key in entry}


@pytest.mark.slow
def test_smoke_sft_then_pairs_then_dpo_then_one_report(short_sft_and_pairs, synthetic_catalogue, tmp_path):
    catalogue = synthetic_catalogue
    (sft, pairs), dpo, report = short_sft_and_pairs, tmp_path / "dpo", tmp_path / "eval"

    # On-policy pairs: the SFT model's wrong answers are rejected; right ones fall back to hard negatives.
    manifest = json.loads((pairs / "manifest.json").read_text())
    train_pairs = datasets.load_from_disk(pairs)["train"]
    num_train = len(datasets.load_from_disk(catalogue)["train"])
    assert manifest["splits"]["train"]["pairs"] == len(train_pairs) == num_train
    assert sum(manifest["splits"]["train"]["pairs_per_kind"].values()) == num_train
    assert manifest["splits"]["train"]["pairs_per_kind"].get("on_policy", 0) > 0
    first = train_pairs[0]
    assert first["chosen"][0]["content"] != first["rejected"][0]["content"]

    # Smoke DPO from the SFT model, LoRA on top, reference = adapter disabled; evaluated on the validation pairs and
    # by the answers to the validation prompts at steps 0 (the SFT model), 8, 16 and 24.
    result = run("scripts/dpo.py", "recipes/smoke-dpo.yaml", "--model_name_or_path", str(sft), "--dataset_name",
                 str(pairs), "--output_dir", str(dpo), "--max_steps", "24", "--logging_steps", "4",
                 "--per_device_train_batch_size", "4", "--eval_steps", "8", "--save_steps", "8")  # fmt: skip
    history = json.loads((dpo / "trainer_state.json").read_text())["log_history"]
    accuracies = [entry["rewards/accuracies"] for entry in history if "rewards/accuracies" in entry]
    margins = [entry["rewards/margins"] for entry in history if "rewards/margins" in entry]
    assert len(accuracies) == 6
    assert sum(accuracies[-2:]) / 2 > 0.5, accuracies
    assert margins[-1] > margins[0] and sum(margins[-2:]) > sum(margins[:2]), margins
    held_out_accuracy = evaluations(history, "eval_rewards/accuracies")
    price_mape = evaluations(history, "eval_price_mape")
    assert list(held_out_accuracy) == list(price_mape) == [0, 8, 16, 24]
    assert all(0 <= value <= 1 for value in held_out_accuracy.values())
    assert {"eval_rewards/margins", "eval_parse_rate", "eval_category_accuracy"} <= set(history[0])
    selection = json.loads((dpo / "selection.json").read_text())
    best_step = min((step for step in price_mape if step > 0), key=lambda step: (price_mape[step], step))
    assert selection["start_score"] == price_mape[0] and selection["saved_step"] == best_step
    assert selection["beats_start"] == (price_mape[best_step] < price_mape[0])
    assert selection["message"] in result.stdout and selection["message"] in (dpo / "README.md").read_text()

    # The output is a DPO adapter over the SFT model; it reloads and generates, and carries the SFT task config.
    assert json.loads((dpo / "adapter_config.json").read_text())["base_model_name_or_path"] == str(sft)
    assert json.loads((dpo / "phi3v_task.json").read_text()) == json.loads((sft / "phi3v_task.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(dpo)
    processor = AutoProcessor.from_pretrained(dpo)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": "<|image_1|>What is shown in this image?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = processor(prompt, [Image.new("RGB", (200, 160), (200, 30, 30))])
    assert model.generate(**inputs, max_new_tokens=8, do_sample=False).shape[1] > inputs["input_ids"].shape[1]

    # SFT and DPO side by side in one report, with the baselines.
    run("scripts/evaluate.py", "--dataset", str(catalogue), "--model", f"sft={sft}", f"dpo={dpo}",
        "--output_dir", str(report), "--no_blank_control")  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"sft", "dpo", "global median", "true-category median"} <= set(metrics)
    header = next(line for line in (report / "report.md").read_text().splitlines() if line.startswith("| metric"))
    assert [cell.strip() for cell in header.strip("|").split("|")][1:3] == ["sft", "dpo"]


@pytest.mark.slow
@pytest.mark.parametrize("use_peft", [True, False], ids=["lora", "full"])
def test_dpo_that_cannot_beat_sft_says_so_and_saves_its_best_checkpoint_not_its_last(
    short_sft_and_pairs, tmp_path, use_peft
):
    from safetensors.torch import load_file

    (sft, pairs), dpo = short_sft_and_pairs, tmp_path / "dpo"
    # A learning rate that wrecks generation: no DPO checkpoint answers in the SFT model's form any more. Checkpoints
    # are chosen by the share of answers that parse; all of them are kept, to compare the saved weights with them.
    result = run("scripts/dpo.py", "recipes/smoke-dpo.yaml", "--model_name_or_path", str(sft), "--dataset_name",
                 str(pairs), "--output_dir", str(dpo), "--learning_rate", "0.05", "--max_steps", "12",
                 "--per_device_train_batch_size", "4", "--eval_steps", "4", "--save_steps", "4",
                 "--save_total_limit", "5", "--metric_for_best_model", "eval_parse_rate",
                 "--greater_is_better", "true", "--use_peft", str(use_peft).lower())  # fmt: skip
    history = json.loads((dpo / "trainer_state.json").read_text())["log_history"]
    parse_rate = evaluations(history, "eval_parse_rate")
    assert list(parse_rate) == [0, 4, 8, 12] and max(parse_rate[4], parse_rate[8], parse_rate[12]) < parse_rate[0]
    best_step = max((4, 8, 12), key=lambda step: (parse_rate[step], -step))  # the first of equals is kept
    selection = json.loads((dpo / "selection.json").read_text())
    assert selection["beats_start"] is False and selection["saved_step"] == best_step
    assert selection["start_score"] == parse_rate[0] and selection["saved_score"] == parse_rate[best_step]
    assert "No checkpoint beat the SFT model" in result.stdout
    assert "No checkpoint beat the SFT model" in (dpo / "README.md").read_text()

    weights = "adapter_model.safetensors" if use_peft else "model.safetensors"
    saved = load_file(dpo / weights)
    best = load_file(dpo / f"checkpoint-{best_step}" / weights)
    last = load_file(dpo / "checkpoint-12" / weights)
    assert saved.keys() == best.keys() == last.keys()
    assert all(torch.equal(saved[name], best[name]) for name in saved)
    assert best_step != 12 and any(not torch.equal(saved[name], last[name]) for name in saved)


def test_dpo_starts_from_an_sft_adapter_merged_into_its_base(tiny_checkpoint, tmp_path):
    # The real recipe's SFT output is a LoRA adapter: DPO must start from base + adapter, merged (the reference).
    import torch
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
    import torch
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


def test_generated_answers_are_scored_with_the_catalogue_template_or_by_exact_match():
    from phi3v.tasks.catalogue import AnswerTemplate
    from phi3v.training import score_answers

    template = AnswerTemplate("Product: {title}, Category: {category3_code}, Full Price: {full_price}")
    truth = template.render({"title": "Red Tote", "category3_code": "bags", "full_price": 200.0})
    answers = ["Product: Red Tote, Category: shoes, Full Price: 150.00", "no idea"]
    scores = score_answers(answers, [[truth], [truth]], template)
    assert scores["parse_rate"] == 0.5 and scores["title_exact_match"] == 0.5 and scores["category_accuracy"] == 0.0
    assert scores["price_mape"] == pytest.approx((0.25 + 1.0) / 2)  # a missing price counts as $0
    assert score_answers(["Yes.", "no"], [["yes"], ["maybe", "No"]]) == {"exact_match": 1.0, "edit_similarity": 1.0}
    with pytest.raises(ValueError, match="2 answers for 1 references"):
        score_answers(answers, [[truth]], template)


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
