"""Training Phi-3-V with TRL: recipe arguments, model loading and LoRA, the run's data and task, the one conversation
encoder behind the SFT and preference collators, length grouping and the W&B predictions table."""

from .callbacks import PredictionsTableCallback
from .cli import last_checkpoint, parse_recipe, setup_logging
from .collator import Phi3VSFTCollator
from .configs import (
    LANGUAGE_MODEL_LORA_TARGETS,
    PROJECTOR_LORA_TARGETS,
    VISION_TOWER_LORA_TARGETS,
    Phi3VModelConfig,
    Phi3VScriptArguments,
)
from .data import training_task
from .length_grouping import add_length_column, padding_share
from .model_loading import freeze_parts, load_model, load_processor, load_sft_model, lora_config
from .preference_collator import Phi3VPreferenceCollator
from .saving import append_usage, save_run


__all__ = [
    "LANGUAGE_MODEL_LORA_TARGETS",
    "PROJECTOR_LORA_TARGETS",
    "VISION_TOWER_LORA_TARGETS",
    "Phi3VModelConfig",
    "Phi3VPreferenceCollator",
    "Phi3VSFTCollator",
    "Phi3VScriptArguments",
    "PredictionsTableCallback",
    "add_length_column",
    "append_usage",
    "freeze_parts",
    "last_checkpoint",
    "load_model",
    "load_processor",
    "load_sft_model",
    "lora_config",
    "padding_share",
    "parse_recipe",
    "save_run",
    "setup_logging",
    "training_task",
]
