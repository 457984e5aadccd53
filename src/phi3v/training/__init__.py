"""Supervised fine-tuning of Phi-3-V: recipe arguments, model loading, the multimodal collator, length grouping and
the W&B predictions table."""

from .callbacks import PredictionsTableCallback
from .cli import parse_recipe, setup_logging
from .collator import Phi3VDataCollator
from .configs import (
    LANGUAGE_MODEL_LORA_TARGETS,
    PROJECTOR_LORA_TARGETS,
    VISION_TOWER_LORA_TARGETS,
    Phi3VModelConfig,
    Phi3VScriptArguments,
)
from .data import load_catalogue
from .length_grouping import add_length_column, padding_share
from .model_card import append_usage
from .model_loading import freeze_parts, load_model, load_processor, lora_config
from .resume import start_or_resume


__all__ = [
    "LANGUAGE_MODEL_LORA_TARGETS",
    "PROJECTOR_LORA_TARGETS",
    "VISION_TOWER_LORA_TARGETS",
    "Phi3VDataCollator",
    "Phi3VModelConfig",
    "Phi3VScriptArguments",
    "PredictionsTableCallback",
    "add_length_column",
    "append_usage",
    "freeze_parts",
    "load_catalogue",
    "load_model",
    "load_processor",
    "lora_config",
    "padding_share",
    "parse_recipe",
    "setup_logging",
    "start_or_resume",
]
