"""The plan as `scripts/sft.py` and `scripts/dpo.py` print it before the model loads: the config alone (no weights),
the rows already loaded, and the layout `accelerate launch` passed."""

import datasets
from accelerate import PartialState
from transformers import AutoConfig, PretrainedConfig, TrainingArguments

from phi3v.inference.loading import is_adapter_dir, root_checkpoint
from phi3v.modeling import Phi3VConfig
from phi3v.training.configs import Phi3VModelConfig

from .parallelism import detect_gpu, parallelism_from_environment
from .plan import RunPlan, format_plan, make_plan
from .tokens import TokenStats, dataset_lengths


def model_config(model_args: Phi3VModelConfig) -> PretrainedConfig:
    """The checkpoint's config (the base's for an SFT adapter), without its weights."""
    path = model_args.model_name_or_path
    if is_adapter_dir(path):
        path = model_args.base_model or root_checkpoint(path)
    return AutoConfig.from_pretrained(path, revision=model_args.model_revision)


def model_config_or_default(model_args: Phi3VModelConfig) -> tuple[PretrainedConfig, str | None]:
    """The checkpoint's config, or, when it cannot be read (a Hub id offline), the Phi-3-vision-128k-instruct
    architecture (`Phi3VConfig()`'s defaults; Phi-3.5-vision-instruct has the same) and a note saying so."""
    try:
        return model_config(model_args), None
    except (OSError, ValueError) as error:
        note = (
            f"Config of {model_args.model_name_or_path} not read ({type(error).__name__}); planning with the "
            "Phi-3-vision architecture (Phi3VConfig defaults, 4,146,621,440 parameters)"
        )
        return Phi3VConfig(), note


def print_run_plan(
    model_args: Phi3VModelConfig,
    training_args: TrainingArguments,
    rows: datasets.Dataset,
    collator,
    preference: bool = False,
) -> RunPlan:
    """Plans the run from the rows it will read and prints the plan on the main process.

    Args:
        model_args ([`Phi3VModelConfig`]): the model arguments.
        training_args ([`~transformers.TrainingArguments`]): the trainer arguments.
        rows (`datasets.Dataset`): the training split.
        collator ([`Phi3VSFTCollator`] or [`Phi3VPreferenceCollator`]): counts each row's tokens.
        preference (`bool`, *optional*, defaults to `False`): a DPO run.
    """
    tokens = TokenStats(dataset_lengths(rows, collator), training_args.max_length, "the training split")
    plan = make_plan(
        model_config(model_args),
        model_args,
        training_args,
        tokens,
        parallelism_from_environment(),
        detect_gpu(),
        preference=preference,
    )
    if PartialState().is_main_process:
        print(format_plan(plan), flush=True)
    return plan
