"""Every recipe of a published Cookbook row parses with the pinned TRL, and its settings are checked against
`phi3v.tasks.PUBLISHED` and `TASKS` (not restated here); `recipes/cookbook/README.md` shows the same numbers."""

import re
from pathlib import Path

import pytest
import yaml
from trl import SFTConfig, TrlParser

from phi3v.tasks import COOKBOOK_LORA_TARGETS, PUBLISHED, PUBLISHED_THROUGHPUT, TASKS
from phi3v.training import Phi3VModelConfig, Phi3VScriptArguments, lora_config, parse_recipe


REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes"
CPU = ["--use_cpu", "true", "--bf16", "false"]
GPUS = 8  # the Cookbook's 8xA100 node; the accelerate configs the headers name launch 8 processes
TOKENS_PER_IMAGE_AT_16_CROPS = 2653  # the widest HD layout (16 x 1): 17 * 144 + 1 + 17 * 12


def parse(recipe: str):
    return parse_recipe(TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig)), [str(RECIPES / recipe), *CPU])


def header(recipe: str) -> str:
    lines = (RECIPES / recipe).read_text().splitlines()
    return "\n".join(line for line in lines if line.startswith("#"))


def test_one_recipe_per_published_row():
    # The Cookbook published SFT only; a GRPO recipe on its data (`grpo-*.yaml`) goes beyond it.
    cookbook_recipes = {
        path.relative_to(RECIPES).as_posix()
        for path in (RECIPES / "cookbook").rglob("*.yaml")
        if not path.name.startswith("grpo-")
    }
    assert cookbook_recipes == {row.recipe for row in PUBLISHED}


@pytest.mark.parametrize("row", PUBLISHED, ids=lambda row: row.recipe)
def test_recipe_matches_the_published_row(row):
    script_args, training_args, model_args = parse(row.recipe)
    task = TASKS[row.task]
    keys = yaml.safe_load((RECIPES / row.recipe).read_text())

    assert model_args.model_name_or_path == row.model
    assert keys["bf16"] is True and model_args.dtype == "bfloat16"
    assert model_args.attn_implementation == "flash_attention_2" and model_args.num_crops == 16

    # data: the task's published sources and its converter
    assert script_args.task == row.task
    assert (script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split) == (
        task.train_source.name,
        task.train_source.config,
        task.train_source.split,
    )
    assert script_args.dataset_format == task.train_source.format
    if task.eval_source.name == task.train_source.name:
        assert script_args.dataset_test_split == task.eval_source.split
    max_images = 2 if row.task == "nlvr2" else 1
    assert training_args.max_length >= max_images * TOKENS_PER_IMAGE_AT_16_CROPS + 256

    # optimisation: the Cookbook's TrainingArguments and the row's learning rate and epochs
    assert (
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * GPUS
        == row.global_batch
    )
    assert training_args.optim == "adamw_torch"
    assert (training_args.adam_beta1, training_args.adam_beta2, training_args.adam_epsilon) == (0.9, 0.95, 1e-7)
    assert training_args.weight_decay == 0.01 and training_args.max_grad_norm == 1.0
    assert training_args.lr_scheduler_type == "linear" and training_args.warmup_steps == 50
    assert training_args.learning_rate == row.learning_rate and training_args.num_train_epochs == row.epochs
    assert training_args.activation_checkpointing is True
    assert training_args.activation_checkpointing_kwargs == {"use_reentrant": False}

    # what trains
    is_lora = row.method in ("lora", "qlora")
    assert model_args.use_peft is is_lora
    assert model_args.load_in_4bit is (row.method == "qlora")
    frozen = row.method == "frozen-vision"
    # the Cookbook's `vision_embed_tokens.requires_grad_(False)`: its module holds the token embedding too (`wte`)
    assert (model_args.freeze_vision_tower, model_args.freeze_projector, model_args.freeze_token_embeddings) == (
        frozen,
        frozen,
        frozen,
    )
    assert not model_args.freeze_language_model
    if is_lora:
        assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (row.lora_r, row.lora_alpha, 0.0)
        assert model_args.lora_target_modules == COOKBOOK_LORA_TARGETS
        assert model_args.lora_init_weights == "gaussian"
    if row.method == "qlora":
        assert model_args.bnb_4bit_quant_type == "nf4"

    # the header: published number, hardware, and the launch command with ZeRO-2 for full fine-tuning, DDP for LoRA
    text = header(row.recipe)
    assert f"Published: {row.value} {task.metric_name}" in text and "8xA100-80GB" in text
    (config,) = set(re.findall(r"--config_file accelerate_configs/(\w+)\.yaml", text))
    assert f"python scripts/reproduce.py recipes/{row.recipe}" in text
    assert config == ("multi_gpu" if is_lora else "zero2")
    assert yaml.safe_load((REPO_ROOT / "accelerate_configs" / f"{config}.yaml").read_text())["num_processes"] == GPUS


def test_lora_recipes_build_the_cookbook_adapter(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)  # same module names as the official checkpoints
    for row in PUBLISHED:
        if row.lora_r is None:
            continue
        _, _, model_args = parse(row.recipe)
        config = lora_config(model_args, model)
        assert (config.r, config.lora_alpha, config.lora_dropout) == (row.lora_r, row.lora_alpha, 0.0)
        assert config.init_lora_weights == "gaussian"
        assert set(config.target_modules) == set(COOKBOOK_LORA_TARGETS)


def test_lora_init_weights_default_is_peft_default(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    assert lora_config(Phi3VModelConfig(use_peft=True), model).init_lora_weights is True
    assert lora_config(Phi3VModelConfig(use_peft=True, lora_init_weights="false"), model).init_lora_weights is False


def readme_rows() -> dict[str, list[str]]:
    """The table of recipes/cookbook/README.md, keyed by the recipe's path under recipes/."""
    rows = {}
    for line in (RECIPES / "cookbook" / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        recipe = re.search(r"recipes/([\w./-]+\.yaml)", line)
        if line.startswith("|") and recipe:
            rows[recipe.group(1)] = cells
    return rows


def test_published_readme_agrees_with_the_table():
    rows = readme_rows()
    assert set(rows) == {row.recipe for row in PUBLISHED}
    for row in PUBLISHED:
        task, model, method, metric, published, reproduced, command = rows[row.recipe]
        assert task.lower().replace(" ", "_") == row.task
        assert float(published) == row.value and metric == TASKS[row.task].metric_name
        assert method == row.method and model == row.model.split("/")[1]
        assert reproduced == ""  # filled in only from a real run
        assert f"python scripts/reproduce.py recipes/{row.recipe}" in command
        assert f"accelerate_configs/{'multi_gpu' if row.lora_r else 'zero2'}.yaml" in command


def test_recipe_comments_quote_the_cookbook_throughput_table():
    """A published recipe's time estimate and memory note quote the FA2 row of its method in `PUBLISHED_THROUGHPUT`,
    the figures `benchmarks/recipe_throughput.py` compares with."""
    for row in PUBLISHED:
        comments = " ".join(
            line.lstrip("# ") for line in (RECIPES / row.recipe).read_text().splitlines() if line.startswith("#")
        )
        figures = next(r for r in PUBLISHED_THROUGHPUT if r.method == row.method and r.flash_attention)
        assert f"({figures.images_per_second} images/s, measured on DocVQA at num_crops 16" in comments, row.recipe
        assert f"(~{figures.memory_gb} GB per GPU in the Cookbook's measurements)" in comments, row.recipe
