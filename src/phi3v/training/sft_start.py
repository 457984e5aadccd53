"""Where DPO starts: the SFT model, given as a full (or merged) checkpoint or as a LoRA adapter over its base."""

import logging
from dataclasses import replace

from peft import PeftModel
from transformers import PreTrainedModel, TrainingArguments

from phi3v.evaluation.loading import adapter_base_model, is_adapter_dir

from .configs import Phi3VModelConfig
from .model_loading import load_model


logger = logging.getLogger(__name__)


def load_sft_model(model_args: Phi3VModelConfig, training_args: TrainingArguments) -> PreTrainedModel:
    """Loads the SFT model to start DPO from, with the same dtype, attention and freezing as SFT.

    An SFT adapter is merged into its base in memory: a new DPO adapter then trains on top, and with that adapter
    disabled the model is exactly the SFT model, which TRL uses as the reference (no second copy in memory).

    Args:
        model_args ([`Phi3VModelConfig`]): `model_name_or_path` is the SFT output directory (model or adapter);
            `base_model`, when set, overrides an adapter's recorded base.
        training_args ([`~transformers.TrainingArguments`]): passed on to [`load_model`].
    """
    path = model_args.model_name_or_path
    if not is_adapter_dir(path):
        return load_model(model_args, training_args)
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise ValueError("Merge the SFT adapter first (scripts/merge_lora.py), then start QLoRA DPO from the merge.")
    base = adapter_base_model(path, model_args.base_model)
    logger.info(f"Merging the SFT adapter {path} into its base {base}")
    model = load_model(replace(model_args, model_name_or_path=base, use_peft=False), training_args)
    return PeftModel.from_pretrained(model, path).merge_and_unload()
