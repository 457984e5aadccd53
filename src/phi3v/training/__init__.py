"""Training Phi-3-V with TRL: recipe arguments, model loading and LoRA, the run's data and task, the one conversation
encoder behind the SFT and preference collators, length grouping, the W&B predictions table, and DPO's validation by
generated answers with checkpoint selection against the SFT model."""

from .callbacks import PredictionsTableCallback
from .cli import parse_recipe, report_check, setup_logging
from .collator import Phi3VSFTCollator
from .configs import (
    LANGUAGE_MODEL_LORA_TARGETS,
    PROJECTOR_LORA_TARGETS,
    VISION_TOWER_LORA_TARGETS,
    Phi3VModelConfig,
    Phi3VScriptArguments,
)
from .data import check_run_rows, load_run_splits, training_task
from .dpo_trainer import Phi3VDPOTrainer
from .generation_validation import GenerationValidation
from .length_grouping import add_length_column, padding_share
from .model_loading import freeze_parts, load_model, load_processor, load_sft_model, lora_config
from .preference_collator import Phi3VPreferenceCollator
from .resume import start_or_resume
from .saving import append_usage, save_run
from .selection import report_selection, selection_verdict


__all__ = [
    "LANGUAGE_MODEL_LORA_TARGETS",
    "PROJECTOR_LORA_TARGETS",
    "VISION_TOWER_LORA_TARGETS",
    "GenerationValidation",
    "Phi3VDPOTrainer",
    "Phi3VModelConfig",
    "Phi3VPreferenceCollator",
    "Phi3VSFTCollator",
    "Phi3VScriptArguments",
    "PredictionsTableCallback",
    "add_length_column",
    "append_usage",
    "check_run_rows",
    "freeze_parts",
    "load_model",
    "load_processor",
    "load_run_splits",
    "load_sft_model",
    "lora_config",
    "padding_share",
    "parse_recipe",
    "report_check",
    "report_selection",
    "save_run",
    "selection_verdict",
    "setup_logging",
    "start_or_resume",
    "training_task",
]
