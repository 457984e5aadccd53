"""Every SFT recipe parses with the pinned TRL into the arguments scripts/sft.py runs with; unknown keys fail; flags
override the recipe; the accelerate configs, the Slurm launcher and the commands in the recipe headers are real."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from trl import DPOConfig, GRPOConfig, SFTConfig, TrlParser

from phi3v.tasks import PUBLISHED
from phi3v.training import Phi3VGRPOScriptArguments, Phi3VModelConfig, Phi3VScriptArguments, parse_recipe


REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes"
# Every recipe, as its path under recipes/ (`burberry/sft-full.yaml`); a new file in any subfolder is picked up.
ALL_RECIPES = sorted(path.relative_to(RECIPES).as_posix() for path in RECIPES.rglob("*.yaml"))
# dpo.py reads `dpo-*`, grpo.py `grpo-*` (tests/unit/test_grpo.py)
SFT_RECIPES = [name for name in ALL_RECIPES if not Path(name).name.startswith(("dpo-", "grpo-"))]
PUBLISHED_RECIPES = {row.recipe for row in PUBLISHED}  # the Cookbook's settings, checked in test_recipes_published.py
REAL_RECIPES = [name for name in SFT_RECIPES if not name.startswith("smoke/") and name not in PUBLISHED_RECIPES]
STAGES = ("sft", "dpo", "grpo")
METHODS = ("full", "frozen-vision", "lora", "qlora")
SMOKE_SFT = RECIPES / "smoke" / "sft-full.yaml"
# Overrides every CPU test needs: the real recipes ask for bf16, which TrainingArguments refuses without a GPU.
CPU = ["--use_cpu", "true", "--bf16", "false"]


def parse(args):
    return parse_recipe(TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig)), args)


def test_the_issue_recipes_exist():
    expected = {"smoke/sft-full.yaml", "burberry.yaml", "burberry/sft-full.yaml", "burberry/sft-lora-phi3.5.yaml"}
    assert expected <= set(SFT_RECIPES)


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_recipe_path_names_its_task_stage_and_method(recipe):
    # `burberry.yaml` is the headline LoRA SFT and keeps its short path; every other recipe lives in its task's (or
    # group's) folder as `STAGE-METHOD[-MODEL].yaml`, and the name tells the truth about the file.
    if recipe == "burberry.yaml":
        stage, method = "sft", "lora"
    else:
        *folders, name = recipe.split("/")
        assert folders, f"{recipe}: a recipe other than burberry.yaml lives in a folder named after its task or group"
        match = re.fullmatch(rf"({'|'.join(STAGES)})-({'|'.join(METHODS)})(?:-[\w.]+)?\.yaml", name)
        assert match, f"{recipe}: name it STAGE-METHOD[-MODEL].yaml, a stage of {STAGES} and a method of {METHODS}"
        stage, method = match.groups()
    config = {"dpo": DPOConfig, "grpo": GRPOConfig}.get(stage, SFTConfig)
    script_arguments = Phi3VGRPOScriptArguments if stage == "grpo" else Phi3VScriptArguments
    _, _, model_args = parse_recipe(
        TrlParser((script_arguments, config, Phi3VModelConfig)), [str(RECIPES / recipe), *CPU]
    )
    if method in ("lora", "qlora"):
        assert model_args.use_peft and bool(model_args.load_in_4bit) == (method == "qlora")
    else:
        assert not model_args.use_peft
        assert model_args.freeze_projector == (method == "frozen-vision")


@pytest.mark.parametrize("recipe", SFT_RECIPES)
def test_recipe_parses_positionally_and_with_config(recipe):
    path = str(RECIPES / recipe)
    script_args, training_args, model_args = parse([path, *CPU])
    config_script_args, config_training_args, config_model_args = parse(["--config", path, *CPU])
    assert (script_args, model_args) == (config_script_args, config_model_args)
    assert training_args.to_dict() == config_training_args.to_dict()
    assert training_args.loss_type == "nll"
    assert script_args.dataset_name
    if recipe not in PUBLISHED_RECIPES:  # catalogue recipes
        assert training_args.train_sampling_strategy == "group_by_length"
        assert training_args.length_column_name == "length"
        assert script_args.dataset_test_split == "validation"


@pytest.mark.parametrize("recipe", REAL_RECIPES)
def test_real_recipes(recipe):
    text = (RECIPES / recipe).read_text()
    _, training_args, model_args = parse([str(RECIPES / recipe), *CPU])
    yaml_keys = yaml.safe_load(text)
    assert yaml_keys["bf16"] is True and model_args.dtype == "bfloat16"
    assert model_args.attn_implementation in ("sdpa", "flash_attention_2")
    assert model_args.num_crops == 4 and training_args.max_length >= 1024  # a 757-token image plus the text
    assert training_args.activation_checkpointing is True
    assert training_args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert training_args.report_to == ["wandb"] and training_args.run_name
    assert training_args.eval_strategy == "steps" and training_args.save_strategy == "steps"
    assert 0 < training_args.warmup_steps < 1 and training_args.lr_scheduler_type == "cosine"
    assert model_args.model_name_or_path.startswith("microsoft/Phi-3")
    # W&B project and entity come from the environment, never from a recipe.
    assert "env" not in yaml_keys and not re.search(r"wandb_(project|entity)\s*:", text, re.IGNORECASE)
    if model_args.use_peft:
        assert model_args.lora_r and model_args.lora_alpha and model_args.lora_dropout is not None
    else:
        assert model_args.freeze_vision_tower


def test_lora_targets_of_the_recipes_are_real_module_names(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    from phi3v.training import lora_config

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)  # same module names as the official checkpoints
    for recipe in REAL_RECIPES:
        _, _, model_args = parse([str(RECIPES / recipe), *CPU])
        if model_args.use_peft:
            assert lora_config(model_args, model).target_modules  # raises if a name matches nothing


def test_smoke_recipe_is_the_cpu_demo():
    script_args, training_args, model_args = parse([str(SMOKE_SFT)])
    assert training_args.use_cpu and not training_args.bf16 and training_args.report_to == []
    assert model_args.model_name_or_path == "outputs/tiny-phi3v" and script_args.dataset_name == "data/synthetic"
    assert model_args.dtype == "float32" and not model_args.use_peft


def test_command_line_overrides_the_recipe():
    _, training_args, model_args = parse(
        [str(RECIPES / "burberry.yaml"), *CPU, "--learning_rate", "1e-5", "--lora_r", "8", "--num_crops", "1"]
    )
    assert training_args.learning_rate == 1e-5 and model_args.lora_r == 8 and model_args.num_crops == 1


def test_unknown_recipe_keys_and_flags_fail_naming_them(tmp_path):
    recipe = tmp_path / "stale.yaml"
    recipe.write_text(SMOKE_SFT.read_text() + "max_seq_length: 512\ntorch_dtype: bfloat16\n")
    with pytest.raises(
        ValueError, match=r"Unknown arguments from config file: \['--max_seq_length', '512', '--torch_dtype'"
    ):
        parse([str(recipe)])
    with pytest.raises(ValueError, match="--not_a_flag"):
        parse([str(SMOKE_SFT), "--not_a_flag", "1"])


@pytest.mark.parametrize("recipe", SFT_RECIPES)
def test_recipe_headers_state_hardware_time_and_a_runnable_command(recipe):
    header = "".join(line for line in (RECIPES / recipe).read_text().splitlines(keepends=True) if line.startswith("#"))
    assert "Hardware:" in header and "Time:" in header
    assert f"scripts/sft.py recipes/{recipe}" in header
    for path in re.findall(r"\b((?:scripts|accelerate_configs|recipes)/[\w./-]+\.(?:py|yaml))", header):
        assert (REPO_ROOT / path).exists(), path


EXPECTED_CONFIGS = {
    "single_gpu": "NO",
    "multi_gpu": "MULTI_GPU",
    "fsdp": "FSDP",
    "zero2": "DEEPSPEED",
    "zero3": "DEEPSPEED",
    "zero3_offload": "DEEPSPEED",
}


@pytest.mark.parametrize("name, distributed_type", EXPECTED_CONFIGS.items())
def test_accelerate_configs(name, distributed_type):
    config = yaml.safe_load((REPO_ROOT / "accelerate_configs" / f"{name}.yaml").read_text())
    assert config["distributed_type"] == distributed_type
    assert config["mixed_precision"] == "bf16" and config["use_cpu"] is False
    assert config["num_processes"] == (1 if name == "single_gpu" else 8)
    if distributed_type == "DEEPSPEED":
        deepspeed = config["deepspeed_config"]
        assert deepspeed["zero_stage"] == (2 if name == "zero2" else 3)
        assert deepspeed["zero3_init_flag"] is (name != "zero2")
        assert (deepspeed["offload_param_device"] == "cpu") is (name == "zero3_offload")


def test_slurm_launcher_is_valid_bash_and_points_at_real_files():
    script = RECIPES / "launch.slurm"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "scripts/sft.py" in text and "accelerate_configs/$2.yaml" in text
    assert (REPO_ROOT / "scripts" / "sft.py").exists()


def test_recipes_readme_names_only_files_that_exist():
    text = (RECIPES / "README.md").read_text()
    for name in re.findall(r"`([\w./-]+\.(?:yaml|slurm))`", text):
        if "*" not in name:
            assert any(
                (folder / name).exists() for folder in (RECIPES, REPO_ROOT / "accelerate_configs", REPO_ROOT)
            ), name
    for path in re.findall(r"\b((?:scripts|benchmarks|tests|src/phi3v)/[\w./-]+\.py)", text):
        assert (REPO_ROOT / path).exists(), path
