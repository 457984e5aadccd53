"""Running a shipped recipe as shipped, on CPU: the fixture in its layout, the launch its header names, the checks.

Only these change from the recipe file: the model path (the tiny model in the official on-disk layout, or for a DPO
or GRPO recipe an SFT output made from it), the dataset (a fixture in the recipe's own layout and its split names, 2 rows of
its validation split), the device (`use_cpu`), the attention implementation (`flash_attention_2` becomes `sdpa`), the
process count (1), the number of optimiser steps (`max_steps`, 2) and gradient accumulation (at most 2 micro-batches
a step: the same accumulation code, where the Cookbook's 8 one-row micro-batches cost 4 times the compute and prove
nothing more). Precision, LoRA/QLoRA settings, frozen parts, activation checkpointing, optimiser, scheduler, length
limits, evaluation, saving and the accelerate/DeepSpeed config named in the header stay as written (the accelerate
config only gains `use_cpu: true` and `num_processes: 1`).

The run is the one process `accelerate launch` would start for it, run in this process: the same script, arguments
and environment, which accelerate's own launcher code prepares (for a recipe launched through torchrun, DDP's or
DeepSpeed's variables, and torchrun's for its one worker), without the ~30 s of importing torch, transformers and TRL
in two more interpreters. The launchers themselves, starting two processes from the same accelerate configs, are
tested by tests/e2e/test_two_processes.py.

Whether the run learned is measured outside it, in float32, on a fixed batch of training rows: the loss of the trained
weights (DeepSpeed's float32 master weights for a full fine-tune, the saved adapter for LoRA) against the loss of the
starting weights. A recipe's warm-up makes its first learning rate 0 and the next tiny, so the fall is small but exact.
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import datasets
import torch
import yaml
from trl import DPOConfig, GRPOConfig, SFTConfig, TrlParser

from phi3v.fixtures.reproduction import DEFAULT_ROWS, make_reproduction_fixtures
from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue
from phi3v.tasks.catalogue import DEFAULT_QUESTION
from phi3v.tasks.catalogue.answers import AnswerTemplate
from phi3v.tasks.catalogue.negatives import HardNegatives, build_preference_pairs
from phi3v.tasks.config import TaskConfig
from phi3v.training import Phi3VGRPOScriptArguments, Phi3VModelConfig, Phi3VScriptArguments, parse_recipe

from .safety_helpers import run_script_here


REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES = REPO_ROOT / "recipes"
STEPS = 2  # optimiser steps per run: a warm-up may make the first learning rate 0, so the second moves the weights
ACCUMULATION = 2  # micro-batches per optimiser step at most (the recipe's own count where it is smaller)
CAULDRON_FIXTURES = {"docvqa": "cauldron_docvqa", "hateful_memes": "hateful_memes", "nlvr2": "nlvr2"}


def stage(recipe: Path) -> str:
    """`sft`, `dpo` or `grpo`: the repository's convention is that a recipe's file name starts with its stage."""
    return next((name for name in ("dpo", "grpo") if recipe.name.startswith(f"{name}-")), "sft")


def is_dpo(recipe: Path) -> bool:
    return stage(recipe) == "dpo"


def parse(recipe: Path, *overrides: str) -> tuple:
    """The recipe's (script, training, model) arguments as its script parses them."""
    script_args, training_args = {
        "sft": (Phi3VScriptArguments, SFTConfig),
        "dpo": (Phi3VScriptArguments, DPOConfig),
        "grpo": (Phi3VGRPOScriptArguments, GRPOConfig),
    }[stage(recipe)]
    parser = TrlParser((script_args, training_args, Phi3VModelConfig))
    return parse_recipe(parser, [str(recipe), *overrides])


def accelerate_config_name(recipe: Path) -> str | None:
    """The accelerate config the recipe's header launches with (`--config_file accelerate_configs/NAME.yaml`)."""
    names = set(re.findall(r"--config_file accelerate_configs/([\w-]+)\.yaml", recipe.read_text()))
    if len(names) > 1:
        raise ValueError(f"{recipe.name} names several accelerate configs: {sorted(names)}")
    return names.pop() if names else None


@dataclass
class RecipeRun:
    recipe: Path
    script_args: Phi3VScriptArguments
    training_args: SFTConfig | DPOConfig | GRPOConfig
    model_args: Phi3VModelConfig
    output_dir: Path
    start_model: Path
    dataset: Path
    result: subprocess.CompletedProcess


def make_fixture(recipe: Path, script_args, training_args, root: Path, rows_per_step: int) -> tuple[Path, list[str]]:
    """A dataset in the recipe's own layout, and the split flags that point the recipe at it."""
    if is_dpo(recipe):
        catalogue = root / "catalogue"
        make_synthetic_catalogue(catalogue, num_products=max(24, 2 * rows_per_step), seed=1)
        splits = datasets.load_from_disk(str(catalogue))
        template = AnswerTemplate(script_args.answer_template)
        pairs = datasets.DatasetDict(
            {
                name: datasets.Dataset.from_list(
                    build_preference_pairs(list(splits[name]), HardNegatives(list(splits[name]), template))
                )
                for name in ("train", "validation")
            }
        )
        pairs.save_to_disk(str(root / "pairs"))
        return root / "pairs", ["--dataset_train_split", "train", "--dataset_test_split", "validation[:2]"]
    # The fixture writer writes all its datasets: those the recipe does not read get 2 rows.
    few_rows = dict.fromkeys(DEFAULT_ROWS, 2)
    if script_args.dataset_format == "the_cauldron":
        name = CAULDRON_FIXTURES[script_args.dataset_config]
        # One optimiser step per epoch, so that a recipe saving per epoch saves after each step; 2 rows validate.
        make_reproduction_fixtures(root / "fixtures", num_rows=few_rows | {name: rows_per_step})
        path = root / "fixtures" / "the_cauldron" / script_args.dataset_config
        return path, ["--dataset_train_split", "train", "--dataset_test_split", "train[:2]"]
    if script_args.dataset_format == "docvqa":
        make_reproduction_fixtures(root / "fixtures", num_rows=few_rows | {"docvqa_train": rows_per_step})
        return root / "fixtures" / "docvqa_1200_examples", [
            "--dataset_train_split",
            "train",
            "--dataset_test_split",
            "test",
        ]
    # A catalogue (the layout of every local `data/...` recipe): prepared splits train / validation / test.
    make_synthetic_catalogue(root / "catalogue", num_products=max(24, 2 * rows_per_step), seed=1)
    return root / "catalogue", ["--dataset_train_split", "train", "--dataset_test_split", "validation[:2]"]


def start_model(recipe: Path, task: str | None, tiny_checkpoint: Path, root: Path) -> Path:
    """The model the recipe starts from: the tiny model; for DPO or GRPO, an SFT output made from it, trained for the
    recipe's task (the catalogue unless it names one: its `phi3v_task.json`)."""
    if stage(recipe) == "sft":
        return tiny_checkpoint
    sft = root / "sft"
    shutil.copytree(tiny_checkpoint, sft)
    task = task or "catalogue"
    TaskConfig(task=task, dataset_format="catalogue" if task == "catalogue" else "auto").save(sft)
    return sft


def accelerate_config(name: str) -> dict:
    """The repository's `accelerate_configs/NAME.yaml`."""
    return yaml.safe_load((REPO_ROOT / "accelerate_configs" / f"{name}.yaml").read_text())


def deepspeed_stage(recipe: Path) -> int | None:
    """The ZeRO stage of the DeepSpeed config the recipe's header launches with; None without DeepSpeed."""
    name = accelerate_config_name(recipe)
    config = {} if name is None else accelerate_config(name)
    return config["deepspeed_config"]["zero_stage"] if config.get("distributed_type") == "DEEPSPEED" else None


def cpu_accelerate_config(name: str, root: Path, num_processes: int = 1, **settings) -> Path:
    """`accelerate_configs/NAME.yaml` for CPU processes, written under `root`: as shipped but for `use_cpu: true`,
    `num_processes` and `settings` (e.g. `mixed_precision="no"`)."""
    config = accelerate_config(name) | {"use_cpu": True, "num_processes": num_processes} | settings
    path = root / f"{name}-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def launch_environment(config_file: Path, command: list[str]) -> dict[str, str]:
    """The environment `accelerate launch --config_file CONFIG_FILE COMMAND` starts the script with, as one process:
    accelerate's own `launch_command` runs, and where it would start the process (its simple launcher's `Popen`, or
    torchrun for DDP and DeepSpeed) the environment is taken instead; for torchrun, with the variables it gives its
    one worker (rank 0 of 1, and the rendezvous address it would serve).

    Args:
        config_file: the accelerate config (with `num_processes: 1`).
        command: the script and its arguments.
    """
    import torch.distributed.run
    from accelerate.commands import launch

    taken = {}

    def start_process(launched: list[str], env: dict[str, str]):  # the simple launcher's `subprocess.Popen`
        taken.update(command=launched[1:], env=dict(env))  # after the interpreter: the script and its arguments
        return SimpleNamespace(wait=lambda: 0, returncode=0)  # a process that ended well, to the launcher

    def start_torchrun(args) -> None:  # `torch.distributed.run.run`, in accelerate's patched environment
        assert (args.nnodes, args.nproc_per_node) in (("1", "1"), ("1:1", "1")), "one process on this machine"
        # torch.distributed.elastic's LocalElasticAgent: the variables of worker 0 of one (`_start_workers`); no
        # agent here, so rank 0 serves the store itself (`TORCHELASTIC_USE_AGENT_STORE`)
        worker = dict.fromkeys(("RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RESTART_COUNT"), "0")
        worker |= dict.fromkeys(("WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE"), "1")
        worker |= {"ROLE_NAME": args.role, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(args.master_port)}
        worker |= {
            "TORCHELASTIC_MAX_RESTARTS": "0",
            "TORCHELASTIC_RUN_ID": "none",
            "TORCHELASTIC_USE_AGENT_STORE": "False",
        }
        taken.update(command=[args.training_script, *args.training_script_args], env=dict(os.environ) | worker)

    # A free port for the rendezvous (as `--main_process_port 0` asks): tests run side by side.
    args = launch.launch_command_parser().parse_args(
        ["--config_file", str(config_file), "--main_process_port", "0", *command]
    )
    with (
        mock.patch.object(launch.subprocess, "Popen", start_process),
        mock.patch.object(torch.distributed.run, "run", start_torchrun),
    ):
        launch.launch_command(args)
    assert taken["command"] == command, taken["command"]
    return taken["env"]


def run_as_launched(recipe: Path, command: list[str], root: Path) -> subprocess.CompletedProcess:
    """`command` (a script under `scripts/` and its arguments) in this process, with the environment the launch in
    `recipe`'s header gives its one process (see the module docstring); W&B offline, in `root`.

    Args:
        recipe: the recipe file, whose header names the accelerate config (or none: a plain `python` run).
        command: the script's path and its arguments.
        root: where the CPU accelerate config and W&B's files go.
    """
    env = {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_DIR": str(root)}
    config_name = accelerate_config_name(recipe)
    if config_name is not None:
        env = launch_environment(cpu_accelerate_config(config_name, root), command) | env
    return run_script_here(Path(command[0]).name, *command[1:], env=env)


def run_recipe(recipe: Path, tiny_checkpoint: Path, root: Path, *overrides: str) -> RecipeRun:
    """Runs `recipe` for `STEPS` optimiser steps on CPU, changed only as the module docstring says and by the test's
    own `overrides` (e.g. `--logging_steps 1`)."""
    script_args, training_args, model_args = parse(recipe, "--use_cpu", "true")
    accumulation = min(training_args.gradient_accumulation_steps, ACCUMULATION)
    rows_per_step = training_args.per_device_train_batch_size * accumulation
    dataset, split_flags = make_fixture(recipe, script_args, training_args, root, rows_per_step)
    model = start_model(recipe, script_args.task, tiny_checkpoint, root)
    output_dir = root / "run"
    overrides = [
        *("--model_name_or_path", str(model), "--dataset_name", str(dataset), *split_flags),
        *("--use_cpu", "true", "--max_steps", str(STEPS), "--output_dir", str(output_dir)),
        *("--gradient_accumulation_steps", str(accumulation), *overrides),
    ]
    if model_args.attn_implementation == "flash_attention_2":
        overrides += ["--attn_implementation", "sdpa"]
    script = REPO_ROOT / "scripts" / f"{stage(recipe)}.py"
    result = run_as_launched(recipe, [str(script), str(recipe), *overrides], root)
    script_args, training_args, model_args = parse(recipe, *overrides)
    return RecipeRun(recipe, script_args, training_args, model_args, output_dir, model, dataset, result)


def log_history(run: RecipeRun) -> list[dict]:
    return json.loads((run.output_dir / "trainer_state.json").read_text())["log_history"]


def last_checkpoint(run: RecipeRun) -> Path | None:
    checkpoints = sorted(run.output_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    return checkpoints[-1] if checkpoints else None


def recipe_dtype(run: RecipeRun) -> torch.dtype:
    return getattr(torch, run.model_args.dtype) if run.model_args.dtype not in (None, "auto") else torch.float32


def probe_rows(run: RecipeRun, count: int = 2) -> list[dict]:
    split = datasets.load_from_disk(str(run.dataset))
    split = split["train"] if isinstance(split, datasets.DatasetDict) else split
    return [split[index] for index in range(min(count, len(split)))]


def question(run: RecipeRun) -> str:
    return run.script_args.question or DEFAULT_QUESTION


def probe_processor(run: RecipeRun):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(run.start_model)
    if run.model_args.num_crops is not None:
        processor.image_processor.num_crops = run.model_args.num_crops
    return processor


def sft_probe_batch(run: RecipeRun) -> dict:
    """The run's own collator on its first training rows."""
    from phi3v.data.loading import load_splits
    from phi3v.training import Phi3VSFTCollator, training_task

    train = load_splits(str(run.dataset), [run.script_args.dataset_train_split])[run.script_args.dataset_train_split]
    _, to_conversation = training_task(run.script_args, train)
    collator = Phi3VSFTCollator(probe_processor(run), run.training_args.max_length, to_conversation)
    return collator([train[index] for index in range(2)])


def dpo_probe_batch(run: RecipeRun) -> dict:
    from phi3v.data.loading import load_splits
    from phi3v.training import Phi3VPreferenceCollator

    train = load_splits(str(run.dataset), [run.script_args.dataset_train_split])[run.script_args.dataset_train_split]
    collator = Phi3VPreferenceCollator(probe_processor(run), max_length=run.training_args.max_length)
    return collator([train[index] for index in range(2)])


def sequence_log_probs(model, batch: dict) -> torch.Tensor:
    inputs = {
        key: batch[key] for key in ("input_ids", "attention_mask", "pixel_values", "image_sizes") if key in batch
    }
    logits = model(**inputs).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:].clamp(min=0)  # image placeholders are negative; never completion tokens
    per_token = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (per_token * batch["completion_mask"][:, 1:]).sum(-1)


def dpo_loss(policy, reference_log_probs: torch.Tensor, batch: dict, beta: float) -> float:
    """TRL's sigmoid DPO loss of `policy` on a `[chosen; rejected]` batch, against the reference's log-probs."""
    log_ratios = sequence_log_probs(policy, batch) - reference_log_probs
    chosen, rejected = log_ratios.chunk(2)
    return float(-torch.nn.functional.logsigmoid(beta * (chosen - rejected)).mean())


def starting_model(run: RecipeRun):
    """The start model as training held it: the recipe's dtype (or 4-bit NF4), evaluated in float32."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if run.model_args.load_in_4bit:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=run.model_args.bnb_4bit_quant_type,
            bnb_4bit_compute_dtype=torch.float32,
        )
        return AutoModelForCausalLM.from_pretrained(
            run.start_model, quantization_config=quantization, device_map={"": "cpu"}, dtype=torch.float32
        ).eval()
    model = AutoModelForCausalLM.from_pretrained(run.start_model, dtype=torch.float32)
    return model.to(recipe_dtype(run)).float().eval()  # the rounding the recipe's dtype applied at load


def trained_adapter(run: RecipeRun):
    from peft import PeftModel

    model = PeftModel.from_pretrained(starting_model(run), run.output_dir)
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            parameter.data = parameter.data.float()
    return model.eval()


def trained_full_state(run: RecipeRun) -> dict[str, torch.Tensor]:
    """The trained weights in float32: DeepSpeed's master weights when the run kept them, else the saved model."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from safetensors.torch import load_file

    checkpoint = last_checkpoint(run)
    if checkpoint is not None and any(checkpoint.glob("global_step*")):
        return {name: tensor.float() for name, tensor in get_fp32_state_dict_from_zero_checkpoint(checkpoint).items()}
    state = {}
    for path in sorted(run.output_dir.glob("*.safetensors")):
        state |= {name: tensor.float() for name, tensor in load_file(path).items()}
    return state


def sft_probe_losses(run: RecipeRun) -> tuple[float, float, dict, dict]:
    """(loss before, loss after, starting state, trained state) on the probe batch; states only for full runs."""
    batch = sft_probe_batch(run)
    with torch.no_grad():
        if run.model_args.use_peft:
            model = trained_adapter(run)
            with model.disable_adapter():
                before = float(model(**batch).loss)
            return before, float(model(**batch).loss), {}, {}
        model = starting_model(run)
        start = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        before = float(model(**batch).loss)
        trained = trained_full_state(run)
        missing = set(start) - set(trained)
        assert not missing, f"trained weights lack {sorted(missing)[:5]}"
        model.load_state_dict(trained, strict=False)
        return before, float(model(**batch).loss), start, trained


def dpo_probe_losses(run: RecipeRun) -> tuple[float, float]:
    """(DPO loss of the start model, of the trained model) against the start model as reference: log 2, then less."""
    batch = dpo_probe_batch(run)
    with torch.no_grad():
        model = trained_adapter(run)
        with model.disable_adapter():
            reference = sequence_log_probs(model, batch)
            before = dpo_loss(model, reference, batch, run.training_args.beta)
        return before, dpo_loss(model, reference, batch, run.training_args.beta)
