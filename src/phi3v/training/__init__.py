"""Training Phi-3-V with TRL: recipe arguments, model loading and LoRA, the run's data and task, the one conversation
encoder behind the SFT and preference collators, length grouping, the W&B predictions table, DPO's and GRPO's
validation by generated answers with checkpoint selection against the SFT model, and GRPO's prompts and task rewards."""

from .callbacks import PredictionsTableCallback, answer_validation
from .cli import parse_recipe, report_check, setup_logging
from .collator import Phi3VSFTCollator
from .configs import (
    LANGUAGE_MODEL_LORA_TARGETS,
    PROJECTOR_LORA_TARGETS,
    VISION_TOWER_LORA_TARGETS,
    Phi3VGRPOScriptArguments,
    Phi3VModelConfig,
    Phi3VScriptArguments,
)
from .data import check_run_rows, load_run_splits, training_task
from .dpo_trainer import Phi3VDPOTrainer
from .generation_validation import GeneratedAnswersEvaluation, GenerationValidation
from .grpo_trainer import Phi3VGRPOTrainer
from .length_grouping import add_length_column, padding_share
from .model_loading import freeze_parts, load_model, load_processor, load_sft_model, lora_config
from .preference_collator import Phi3VPreferenceCollator
from .resume import start_or_resume
from .rewards import TaskReward, grpo_dataset, load_reward_function, reward_functions
from .saving import append_usage, save_run
from .selection import report_selection, selection_verdict


__all__ = [
    "LANGUAGE_MODEL_LORA_TARGETS",
    "PROJECTOR_LORA_TARGETS",
    "VISION_TOWER_LORA_TARGETS",
    "GeneratedAnswersEvaluation",
    "GenerationValidation",
    "Phi3VDPOTrainer",
    "Phi3VGRPOScriptArguments",
    "Phi3VGRPOTrainer",
    "Phi3VModelConfig",
    "Phi3VPreferenceCollator",
    "Phi3VSFTCollator",
    "Phi3VScriptArguments",
    "PredictionsTableCallback",
    "TaskReward",
    "add_length_column",
    "answer_validation",
    "append_usage",
    "check_run_rows",
    "freeze_parts",
    "grpo_dataset",
    "load_model",
    "load_processor",
    "load_reward_function",
    "load_run_splits",
    "load_sft_model",
    "lora_config",
    "padding_share",
    "parse_recipe",
    "report_check",
    "report_selection",
    "reward_functions",
    "save_run",
    "selection_verdict",
    "setup_logging",
    "start_or_resume",
    "training_task",
]
