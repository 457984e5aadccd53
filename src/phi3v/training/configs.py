"""The recipe arguments: TRL's `ScriptArguments` and `ModelConfig`, each extended by the few fields Phi-3-V needs.

A recipe YAML is one flat mapping over these two classes and TRL's `SFTConfig` (parsed together by `TrlParser`), so
every key of a recipe under `recipes/` is a field of one of them and a key that is not fails at start-up.
"""

from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments

from phi3v.checks import ATTN_IMPLEMENTATIONS, DTYPES, check_choice
from phi3v.data.formats import FORMATS
from phi3v.data.tables import DELIMITER_HELP, ENCODING_HELP, check_delimiter, check_encoding
from phi3v.errors import UsageError
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION
from phi3v.tasks.config import TASK_NAMES


# LoRA targets by their real Phi-3-V module names (PEFT matches a name or its dotted suffix). The language model fuses
# q/k/v into `qkv_proj` and gate/up into `gate_up_proj`; the CLIP tower has separate `q/k/v_proj` and `out_proj`.
LANGUAGE_MODEL_LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
VISION_TOWER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
PROJECTOR_LORA_TARGETS = ["img_projection.0", "img_projection.2"]


@dataclass
class Phi3VScriptArguments(ScriptArguments):
    r"""
    TRL's [`~trl.ScriptArguments`] plus the layout of the data and, for a catalogue, how a row becomes a conversation.

    `dataset_name` is a `save_to_disk` directory (e.g. from `scripts/make_synthetic_catalogue.py` or the data
    preparation script), a local `.parquet`/`.jsonl`/`.json`/`.csv` file, or a Hub dataset id (with
    `dataset_config`); the split names take slices, e.g. `train[500:]`.

    Args:
        dataset_format (`str`, *optional*, defaults to `"auto"`):
            The rows' layout: `conversational` (TRL's `images` + `messages` or `prompt`/`completion`), `catalogue`,
            `the_cauldron`, `llava` or `docvqa`; `auto` tells it from the columns.
        task (`str`, *optional*):
            What the model is evaluated on: `catalogue`, `conversation` (the last assistant turn), or a published task
            (`docvqa`, `hateful_memes`, `nlvr2`). Defaults to `catalogue` for catalogue data, else `conversation`.
            Saved with the model (`phi3v_task.json`) for `scripts/evaluate.py`.
        image_folder (`str`, *optional*):
            Where relative LLaVA image paths are resolved; defaults to the folder of the dataset file.
        question (`str`, *optional*, defaults to `"What is shown in this image?"`):
            Catalogue only: the user's question, asked after the image.
        answer_template (`str`, *optional*, defaults to `"Product: {title}, Category: {category3_code}, Full Price:
            {full_price}"`):
            Catalogue only: the assistant's answer; `{column}` placeholders are filled from the row. It must read back
            (`phi3v.tasks.catalogue.AnswerTemplate`), or the run stops at start-up.
        eval_predictions (`int`, *optional*, defaults to `8`):
            Validation rows whose generated answers the W&B predictions table shows at each evaluation (only with
            `report_to: wandb`); 0 turns the table off.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Delete the earlier run in `output_dir` (only in a directory this project created) and start fresh,
            instead of resuming it (same recipe) or refusing (another recipe). See `phi3v.training.resume`.
        check_only (`bool`, *optional*, defaults to `False`):
            Check the arguments and the data, load the model and build the trainer, then stop: nothing is trained and
            nothing is written (`scripts/reproduce.py` does this before it spends the base model's evaluation).
        eval_generations (`int`, *optional*, defaults to `0`):
            `scripts/dpo.py`, `scripts/grpo.py`: the first this many validation items are answered (greedy; GRPO: at
            most `max_completion_length` tokens) at each evaluation and scored with the task's metrics, logged as
            `eval_<metric>` (`eval_price_mape`, `eval_category_accuracy`, ... for the catalogue; `eval_exact_match`
            otherwise), so `metric_for_best_model` can name one; 0 turns it off.
        allow_local_paths (`bool`, *optional*, defaults to `False`):
            Let a local dataset's rows name image files outside its folder (absolute paths, `file://`, `../`). A Hub
            dataset's rows never read local files (`phi3v.data.local_files`).
        encoding (`str`, *optional*):
            A local CSV dataset's encoding, instead of detecting it (`phi3v.data.tables`).
        delimiter (`str`, *optional*):
            A local CSV dataset's delimiter, instead of detecting it.
        drop_invalid_rows (`bool`, *optional*, defaults to `False`):
            Leave out the rows that cannot be trained on (an assistant turn first, an empty answer, a `None` text,
            images that their tags do not match, an unreadable image...) instead of stopping with the list; their
            count and reasons are logged and written to `output_dir/dropped_rows.json` when training starts
            (`phi3v.data.validation`).
    """

    dataset_format: str = field(
        default="auto",
        metadata={"help": "The rows' layout: auto, conversational, catalogue, the_cauldron, llava or docvqa."},
    )
    task: str | None = field(
        default=None,
        metadata={
            "help": "What the model is evaluated on: catalogue, conversation, docvqa, hateful_memes or nlvr2; "
            "defaults to catalogue for catalogue data, else conversation."
        },
    )
    image_folder: str | None = field(
        default=None,
        metadata={"help": "Where relative LLaVA image paths are resolved; defaults to the dataset file's folder."},
    )
    question: str = field(default=DEFAULT_QUESTION, metadata={"help": "The user's question, asked after the image."})
    answer_template: str = field(
        default=DEFAULT_ANSWER_TEMPLATE,
        metadata={"help": "The assistant's answer; `{column}` placeholders are filled from the row."},
    )
    eval_predictions: int = field(
        default=8,
        metadata={
            "help": "Validation rows whose generated answers the W&B predictions table shows at each evaluation "
            "(only with `report_to: wandb`); 0 turns the table off."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Delete the earlier run in `output_dir` (only in a directory this project created) and start "
            "fresh, instead of resuming it (same recipe) or refusing (another recipe)."
        },
    )
    check_only: bool = field(
        default=False,
        metadata={
            "help": "Check the arguments and data, load the model and build the trainer, then stop without training "
            "or writing anything."
        },
    )
    eval_generations: int = field(
        default=0,
        metadata={
            "help": "dpo.py, grpo.py: validation items answered and scored with the task's metrics at each evaluation "
            "(`eval_price_mape`, `eval_exact_match`, ...), for `metric_for_best_model`; 0 turns it off."
        },
    )
    allow_local_paths: bool = field(
        default=False,
        metadata={
            "help": "Let a local dataset's rows name image files outside its folder; a Hub dataset's rows never read "
            "local files."
        },
    )
    encoding: str | None = field(default=None, metadata={"help": ENCODING_HELP})
    delimiter: str | None = field(default=None, metadata={"help": DELIMITER_HELP})

    drop_invalid_rows: bool = field(
        default=False,
        metadata={
            "help": "Leave out the rows that cannot be trained on (wrong roles or order, empty answers, missing or "
            "unreadable images, ...) instead of stopping with the list; their reasons go to "
            "output_dir/dropped_rows.json."
        },
    )

    def __post_init__(self):  # TRL's ScriptArguments has none to call
        # TRL's parser checks no choice of a `str` field, and argparse none of a recipe's values.
        check_choice("dataset_format", self.dataset_format, FORMATS)
        check_choice("task", self.task, TASK_NAMES, allow_none=True)
        self.encoding, self.delimiter = check_encoding(self.encoding), check_delimiter(self.delimiter)
        for name in ("eval_predictions", "eval_generations"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be at least 0, got {getattr(self, name)}.")


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
        freeze_token_embeddings (`bool`, *optional*, defaults to `False`):
            Full fine-tuning only: keep the token embeddings fixed. With `freeze_vision_tower` and `freeze_projector`
            it is the Cookbook's "frozen image model": Microsoft's `vision_embed_tokens` module holds the token
            embedding too (as `wte`), so its `vision_embed_tokens.requires_grad_(False)` freezes all three.
        freeze_language_model (`bool`, *optional*, defaults to `False`):
            Full fine-tuning only: keep the embeddings, decoder layers, final norm and LM head fixed.
        lora_target_modules (`list[str]`, *optional*, defaults to the language model's linear layers):
            Module names (or dotted suffixes) that get LoRA adapters. Add `q_proj k_proj v_proj out_proj fc1 fc2` for
            the vision tower and `img_projection.0 img_projection.2` for the projector. Every name must match a module.
        base_model (`str`, *optional*):
            DPO from an SFT LoRA adapter only: the base checkpoint to merge it into, overriding
            `base_model_name_or_path` in its `adapter_config.json` (e.g. the base has moved).
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
    freeze_token_embeddings: bool = field(
        default=False,
        metadata={
            "help": "Full fine-tuning only: keep the token embeddings fixed (with freeze_vision_tower and "
            "freeze_projector: the Cookbook's frozen image model)."
        },
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
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "DPO from an SFT LoRA adapter only: the base checkpoint to merge it into, overriding "
            "`base_model_name_or_path` in its `adapter_config.json`."
        },
    )
    lora_init_weights: str = field(
        default="true",
        metadata={
            "help": "PEFT's `init_lora_weights`: `true` (Kaiming-uniform A, zero B), `gaussian` (the Phi-3 Cookbook's), "
            "`pissa`, `olora`, ..."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        check_choice("dtype", self.dtype, DTYPES, allow_none=True)
        check_choice("attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS, allow_none=True)
        if self.num_crops is not None and self.num_crops < 1:
            raise UsageError(f"num_crops must be at least 1, got {self.num_crops}.")


@dataclass
class Phi3VGRPOScriptArguments(Phi3VScriptArguments):
    r"""
    [`Phi3VScriptArguments`] plus the rewards of `scripts/grpo.py`.

    Args:
        reward_funcs (`list[str]`, *optional*):
            The reward functions, in the order of GRPOConfig's `reward_weights`: components of the task's reward
            (`Task.rewards`; the catalogue's `format`, `price`, `category`, `title`; `anls` or `cookbook_accuracy` for
            the Cookbook's tasks; `edit_similarity` for a conversation), or a function of your own as a dotted path
            (`my_rewards:brevity` or `my_rewards.brevity`, taking `(prompts, completions, **kwargs)`). Defaults to
            every component of the task's reward (`phi3v.training.rewards`).
    """

    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Reward functions, in the order of `reward_weights`: components of the task's reward (format, "
            "price, category, title; anls; edit_similarity) or dotted paths `module:function`; defaults to every "
            "component of the task's reward."
        },
    )
