"""The recipe arguments: TRL's `ScriptArguments` and `ModelConfig`, each extended by the few fields Phi-3-V needs.

A recipe YAML is one flat mapping over these two classes and TRL's `SFTConfig` (parsed together by `TrlParser`), so
every key of `recipes/*.yaml` is a field of one of them and a key that is not fails at start-up.
"""

from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments

from phi3v.data.formatting import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION


# LoRA targets by their real Phi-3-V module names (PEFT matches a name or its dotted suffix). The language model fuses
# q/k/v into `qkv_proj` and gate/up into `gate_up_proj`; the CLIP tower has separate `q/k/v_proj` and `out_proj`.
LANGUAGE_MODEL_LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
VISION_TOWER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
PROJECTOR_LORA_TARGETS = ["img_projection.0", "img_projection.2"]


@dataclass
class Phi3VScriptArguments(ScriptArguments):
    r"""
    TRL's [`~trl.ScriptArguments`] plus how a catalogue row becomes a conversation.

    `dataset_name` is a directory written by `scripts/make_synthetic_catalogue.py` or the data preparation script
    (loaded with `datasets.load_from_disk`), or a Hub dataset with the same columns.

    Args:
        question (`str`, *optional*, defaults to `"What is shown in this image?"`):
            The user's question, asked after the image.
        answer_template (`str`, *optional*, defaults to `"Product: {title}, Category: {category3_code}, Full Price:
            {full_price}"`):
            The assistant's answer; `{column}` placeholders are filled from the row.
        eval_predictions (`int`, *optional*, defaults to `8`):
            Validation images whose generated answers the W&B predictions table shows at each evaluation (only with
            `report_to: wandb`); 0 turns the table off.
        dataset_format (`str`, *optional*, defaults to `"auto"`):
            The layout of the dataset's rows: `the_cauldron`, `docvqa`, `llava`, ... (`phi3v.data.conversations`
            converts each to a conversation); `auto` recognises it from the columns.
        task (`str`, *optional*):
            A published task whose prompt and metric the run follows: `docvqa`, `hateful_memes` or `nlvr2`
            (`phi3v.tasks.TASKS`).
    """

    question: str = field(default=DEFAULT_QUESTION, metadata={"help": "The user's question, asked after the image."})
    answer_template: str = field(
        default=DEFAULT_ANSWER_TEMPLATE,
        metadata={"help": "The assistant's answer; `{column}` placeholders are filled from the row."},
    )
    eval_predictions: int = field(
        default=8,
        metadata={
            "help": "Validation images whose generated answers the W&B predictions table shows at each evaluation "
            "(only with `report_to: wandb`); 0 turns the table off."
        },
    )
    dataset_format: str = field(
        default="auto",
        metadata={
            "help": "The layout of the dataset's rows: `the_cauldron`, `docvqa`, `llava`, ...; `auto` recognises it "
            "from the columns."
        },
    )
    task: str | None = field(
        default=None,
        metadata={
            "help": "A published task whose prompt and metric the run follows: `docvqa`, `hateful_memes` or `nlvr2`."
        },
    )


@dataclass
class Phi3VModelConfig(ModelConfig):
    r"""
    TRL's [`~trl.ModelConfig`] plus image resolution and what trains.

    Args:
        num_crops (`int`, *optional*):
            Maximum HD crops per image; defaults to the checkpoint's processor (16 for Phi-3-vision-128k-instruct, 4 for
            Phi-3.5-vision-instruct). An image costs `(rows * cols + 1) * 144 + 1 + (rows + 1) * 12` tokens: 757 for a
            square image at 4 crops, 2,509 at 16.
        freeze_vision_tower (`bool`, *optional*, defaults to `False`):
            Full fine-tuning only: keep the CLIP tower (and the learnable separators) fixed.
        freeze_projector (`bool`, *optional*, defaults to `False`):
            Full fine-tuning only: keep the image projector fixed.
        freeze_language_model (`bool`, *optional*, defaults to `False`):
            Full fine-tuning only: keep the embeddings, decoder layers, final norm and LM head fixed.
        lora_target_modules (`list[str]`, *optional*, defaults to the language model's linear layers):
            Module names (or dotted suffixes) that get LoRA adapters. Add `q_proj k_proj v_proj out_proj fc1 fc2` for
            the vision tower and `img_projection.0 img_projection.2` for the projector. Every name must match a module.
        lora_init_weights (`str`, *optional*, defaults to `"true"`):
            PEFT's `init_lora_weights`: `true` (Kaiming-uniform A, zero B), `gaussian` (the Phi-3 Cookbook's), `pissa`,
            `olora`, ... B starts at zero in every case but the SVD-based ones, so training starts from the base model.
    """

    num_crops: int | None = field(
        default=None,
        metadata={
            "help": "Maximum HD crops per image; defaults to the checkpoint's processor (16 for Phi-3-vision, 4 for "
            "Phi-3.5-vision). A square image costs 757 tokens at 4 crops, 2,509 at 16."
        },
    )
    freeze_vision_tower: bool = field(
        default=False,
        metadata={"help": "Full fine-tuning only: keep the CLIP tower (and the learnable separators) fixed."},
    )
    freeze_projector: bool = field(
        default=False, metadata={"help": "Full fine-tuning only: keep the image projector fixed."}
    )
    freeze_language_model: bool = field(
        default=False,
        metadata={"help": "Full fine-tuning only: keep the embeddings, decoder layers, final norm and LM head fixed."},
    )
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: list(LANGUAGE_MODEL_LORA_TARGETS),
        metadata={
            "help": "Module names (or dotted suffixes) that get LoRA adapters; defaults to the language model's "
            "`qkv_proj o_proj gate_up_proj down_proj`. Add `q_proj k_proj v_proj out_proj fc1 fc2` for the vision "
            "tower and `img_projection.0 img_projection.2` for the projector."
        },
    )
    lora_init_weights: str = field(
        default="true",
        metadata={
            "help": "PEFT's `init_lora_weights`: `true` (Kaiming-uniform A, zero B), `gaussian` (the Phi-3 Cookbook's), "
            "`pissa`, `olora`, ..."
        },
    )
