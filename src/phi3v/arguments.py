"""The command-line arguments the entry scripts share, as dataclasses parsed by `transformers.HfArgumentParser`, as
`scripts/sft.py` and `scripts/dpo.py` parse TRL's: how a model loads for inference, how answers are generated, the
dataset split read and the output directory. Each script adds its own flags as one dataclass of its own.

`HfArgumentParser` gives a field the argparse type of its annotation (`int`, `str`, ...), so a value's range or form
is checked in `__post_init__`, with the message the argparse types of `phi3v.checks` give: `argument --batch_size:
must be at least 1, got 0`. A `bool` field is a switch that also takes a value (`--overwrite` and `--overwrite true`
are alike); one that defaults to true has a `--no_` form (`--no_blank_control`). A `list` field takes several values.
"""

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from phi3v.checks import ATTN_IMPLEMENTATIONS, DTYPES, auto_bool, positive_int, torch_device
from phi3v.data.formats import FORMATS
from phi3v.data.tables import DELIMITER_HELP, ENCODING_HELP, check_delimiter, check_encoding
from phi3v.errors import UsageError, usage_errors


def check_flag(name: str, value, argparse_type: Callable[[str], object]) -> None:
    """Raises `UsageError` (`argument --NAME: ...`, as argparse words it) when `argparse_type` refuses `value`.

    Args:
        name (`str`): the field, e.g. `"batch_size"`.
        value: its parsed value; `None` (not given) passes.
        argparse_type (`Callable[[str], object]`): one of the argparse types of `phi3v.checks`, e.g. `positive_int`.
    """
    if value is None:
        return
    try:
        argparse_type(str(value))
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"argument --{name}: {error}") from None


@dataclass
class ModelLoadingArguments:
    """How a model (a base or merged checkpoint, or a LoRA adapter) loads for inference (`load_for_inference`).

    Args:
        base_model (`str`, *optional*):
            The base checkpoint of LoRA adapters, overriding `base_model_name_or_path` in their `adapter_config.json`.
        dtype (`str`, *optional*, defaults to `"auto"`):
            Weight dtype; `auto` keeps the checkpoint's.
        load_in_4bit (`str`, *optional*, defaults to `"auto"`):
            `auto`: a QLoRA adapter's base is quantised to 4-bit as in training (`base_quantization_config.json`), any
            other model loads in full precision; `true` quantises every base; `false` loads full-precision bases.
            `load_base_in_4bit` is the value `load_for_inference` takes.
        attn_implementation (`str`, *optional*):
            One of `phi3v.checks.ATTN_IMPLEMENTATIONS`; defaults to sdpa.
        device (`str`, *optional*):
            A torch device (`cpu`, `cuda`, `cuda:1`, `mps`). `None` is the GPU when there is one, else the CPU, as
            the script resolves it (`evaluate.py`: accelerate's device); `predict.py` and `app.py` default to `cpu`.
    """

    base_model: str | None = field(
        default=None,
        metadata={"help": "Base checkpoint of LoRA adapters, overriding their adapter_config.json."},
    )
    dtype: str = field(
        default="auto", metadata={"help": "Weight dtype; `auto` keeps the checkpoint's.", "choices": DTYPES}
    )
    load_in_4bit: str = field(
        default="auto",
        metadata={
            "help": "`auto` (default): a QLoRA adapter's base is quantised to 4-bit as in training "
            "(base_quantization_config.json), any other model loads in full precision; `true` quantises every base "
            "(NF4 unless recorded); `false` loads full-precision bases, which a QLoRA adapter did not train on.",
            "metavar": "{auto,true,false}",
        },
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Default: sdpa.", "choices": ATTN_IMPLEMENTATIONS}
    )
    device: str | None = field(
        default=None,
        metadata={
            "help": "Device to run on, e.g. `cpu`, `cuda` or `cuda:1`; default: the GPU when there is one, else the CPU."
        },
    )

    def __post_init__(self):
        check_flag("load_in_4bit", self.load_in_4bit, auto_bool)
        check_flag("device", self.device, torch_device)

    @property
    def load_base_in_4bit(self) -> bool | None:
        """`--load_in_4bit` as `load_for_inference` takes it: `None` for `auto` (as the model was trained)."""
        return auto_bool(self.load_in_4bit)


@dataclass
class GenerationArguments:
    """How answers are generated (greedy, batched).

    Args:
        batch_size (`int`, *optional*, defaults to `8`):
            Prompts per `generate` call (per process, under accelerate).
        max_new_tokens (`int`, *optional*, defaults to `64`):
            Generation budget; a catalogue answer is about 25 tokens.
        num_crops (`int`, *optional*):
            Maximum HD crops per image; defaults to the processor's.
    """

    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call (per process)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Generation budget; an answer is ~25 tokens."})
    num_crops: int | None = field(default=None, metadata={"help": "Override the processor's number of HD crops."})

    def __post_init__(self):
        for name in ("batch_size", "max_new_tokens", "num_crops"):
            check_flag(name, getattr(self, name), positive_int)


@dataclass
class DatasetArguments:
    """The split of a dataset that is read, in any layout `phi3v.data.loading.load_splits` reads.

    Args:
        dataset (`str`):
            A `save_to_disk` directory, a local `.parquet`/`.jsonl`/`.json`/`.csv` file, or a Hub dataset id.
        dataset_config (`str`, *optional*):
            The Hub dataset's configuration (e.g. `hateful_memes`).
        split (`str`, *optional*, defaults to `"test"`):
            The split, with an optional slice: `train[:500]`.
        image_folder (`str`, *optional*):
            Where relative LLaVA image paths are resolved; defaults to the dataset file's folder.
        dataset_format (`str`, *optional*, defaults to `"auto"`):
            The rows' layout (`phi3v.data.formats.FORMATS`); `auto` tells it from the columns.
        allow_local_paths (`bool`, *optional*, defaults to `False`):
            Let a local dataset's rows name image files outside its folder; a Hub dataset's rows never read local
            files.
        encoding (`str`, *optional*):
            A local CSV dataset's encoding, instead of detecting it (`phi3v.data.tables`).
        delimiter (`str`, *optional*):
            A local CSV dataset's delimiter, instead of detecting it.
    """

    dataset: str = field(
        metadata={"help": "A `save_to_disk` directory, a local .parquet/.jsonl/.json/.csv file, or a Hub dataset id."}
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "The Hub dataset's configuration (e.g. hateful_memes)."}
    )
    split: str = field(default="test", metadata={"help": "Split to read, with an optional slice: `train[:500]`."})
    image_folder: str | None = field(
        default=None, metadata={"help": "Folder of relative LLaVA image paths (default: the file's)."}
    )
    dataset_format: str = field(
        default="auto",
        metadata={"help": "The dataset's layout; `auto` tells it from the columns.", "choices": FORMATS},
    )
    allow_local_paths: bool = field(
        default=False,
        metadata={
            "help": "Let a local dataset's rows name image files outside its folder (a Hub dataset's never read "
            "local files)."
        },
    )
    encoding: str | None = field(default=None, metadata={"help": ENCODING_HELP})
    delimiter: str | None = field(default=None, metadata={"help": DELIMITER_HELP})

    def __post_init__(self):
        self.encoding, self.delimiter = check_encoding(self.encoding), check_delimiter(self.delimiter)


@dataclass
class OutputArguments:
    """Where a script writes, and whether it may replace what it wrote there before (`phi3v.outputs`).

    Args:
        output_dir (`str`):
            The output directory (`--output` is the same flag); the script's description says what it holds.
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace an earlier output of the same script there; a directory this project did not write, or wrote for
            something else, is never replaced.
    """

    output_dir: str = field(
        metadata={"help": "Directory to write the outputs in (described above).", "aliases": ["--output"]}
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Replace --output_dir if it holds an earlier output of this script (other directories are never "
            "replaced)."
        },
    )


class ScriptArgumentParser(HfArgumentParser):
    """`HfArgumentParser` for an entry script: its docstring as the description (kept as written), each flag in its
    one spelling (`--max_new_tokens`), and a bad flag or value raises `UsageError` (one line, exit status 2; see
    `phi3v.errors.usage_errors`).

    Args:
        dataclass_types (`tuple`): the dataclasses to fill, in the order `parse` returns them.
        description (`str`): the script's docstring.
        kwargs: passed to `argparse.ArgumentParser` (e.g. `allow_abbrev=False` for a script that passes flags on).
    """

    def __init__(self, dataclass_types: tuple, description: str, **kwargs):
        super().__init__(
            dataclass_types, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
        )
        # `HfArgumentParser` adds `--max-new-tokens` beside `--max_new_tokens`: the scripts keep their one spelling,
        # which argparse's messages then name alone (`argument --max_new_tokens: ...`, not `--max_new_tokens/--max-...`).
        for action in self._actions:
            for option in [option for option in action.option_strings if "-" in option.lstrip("-")]:
                action.option_strings.remove(option)
                del self._option_string_actions[option]
        usage_errors(self)

    def parse(self, args: list[str] | None = None) -> tuple:
        """The dataclasses, then a `Namespace` of the plain argparse arguments added after construction (a script's
        positional arguments), if any. An unknown flag is refused as argparse refuses it."""
        *parsed, remaining = self.parse_known(args)
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        return tuple(parsed)

    def parse_known(self, args: list[str] | None = None) -> tuple:
        """As `parse`, with the arguments it does not know last (a script that passes them on to another)."""
        # No `.args` file beside the script is read: what runs is what the command line says.
        return self.parse_args_into_dataclasses(args, return_remaining_strings=True, look_for_args_file=False)
