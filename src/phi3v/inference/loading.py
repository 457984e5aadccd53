"""Load any of the three model forms for inference: a base model, a merged model, or a LoRA adapter over its base.

A directory holding `adapter_config.json` is a PEFT adapter. Its base comes from `--base_model` when given, else from
the adapter's own `base_model_name_or_path`; the adapter is applied on top, unmerged, so its outputs are exactly
"base + adapter". A base that is itself an adapter (a DPO adapter over an SFT adapter) is merged into its own base
first. The processor comes from the adapter directory when training saved one there (it may carry a
changed `num_crops` or chat template), else from the base. Anything else is loaded as a full checkpoint.

A QLoRA adapter (trained on a 4-bit base; `phi3v.inference.quantization`) gets its base quantised again with the
recorded settings unless `load_in_4bit=False` asks for the full-precision weights, which are not what it trained on.

Example:

```python
>>> model, processor = load_for_inference("outputs/phi3v-burberry")  # adapter: base read from adapter_config.json
>>> model, processor = load_for_inference("microsoft/Phi-3-vision-128k-instruct", dtype="bfloat16", device="cuda")
```
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoProcessor
from transformers.utils import CONFIG_NAME, cached_file

from phi3v.checks import check_local_path, looks_like_local_path
from phi3v.errors import MissingPathError, UsageError
from phi3v.inference.quantization import base_quantization


ADAPTER_CONFIG_NAME = "adapter_config.json"
# A processor saved beside an adapter always writes these two files.
PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer_config.json")


def is_adapter_dir(path: str | Path) -> bool:
    """Whether `path` is a local directory holding a PEFT adapter (`adapter_config.json`)."""
    return (Path(path) / ADAPTER_CONFIG_NAME).is_file()


def has_processor_files(path: str | Path) -> bool:
    """Whether `path` is a local directory holding a saved processor (image processor and tokenizer configs)."""
    return all((Path(path) / name).is_file() for name in PROCESSOR_FILES)


def adapter_base_model(adapter_dir: str | Path, base_model: str | None = None) -> str:
    """The base checkpoint of an adapter: `base_model` when given, else the adapter's `base_model_name_or_path`.

    Args:
        adapter_dir (`str` or `Path`): a directory with `adapter_config.json`.
        base_model (`str`, *optional*): overrides the recorded base (e.g. the same weights at another path).

    Raises:
        `ValueError`: when neither names a base.
    """
    if base_model:
        return str(base_model)
    from peft import PeftConfig  # imported on use: PEFT pulls in bitsandbytes and torch.compile, seconds per process

    recorded = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    if not recorded:
        raise UsageError(
            f"{adapter_dir}/{ADAPTER_CONFIG_NAME} has no base_model_name_or_path; pass the base model explicitly."
        )
    return recorded


def root_checkpoint(path: str | Path) -> str:
    """The full checkpoint at the bottom of a chain of adapters (the path itself when it is not an adapter)."""
    while is_adapter_dir(path):
        path = adapter_base_model(path)
    return str(path)


def load_merged(path: str | Path, **model_kwargs):
    """A checkpoint, or an adapter merged into its base (itself possibly an adapter, e.g. a DPO adapter trained on an
    SFT adapter): the chain is merged from the bottom up.

    Args:
        path (`str` or `Path`): a checkpoint (local or Hub) or a local adapter directory.
        **model_kwargs: passed to `from_pretrained` (`dtype`, `attn_implementation`).
    """
    if not is_adapter_dir(path):
        return AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
    from peft import PeftModel  # imported on use, as in `adapter_base_model`

    base = load_merged(adapter_base_model(path), **model_kwargs)
    return PeftModel.from_pretrained(base, path).merge_and_unload()


def check_hub_model(repo_id: str, what: str = "Model") -> None:
    """Checks that a Hub id gives a checkpoint or an adapter, fetching only its small config (from the cache when
    offline), so a typo or an unreachable Hub is one line before anything loads rather than a traceback later.

    Args:
        repo_id (`str`): the Hub id.
        what (`str`, *optional*, defaults to `"Model"`): what it is, for the message.

    Raises:
        `MissingPathError`: with the Hub's own reason (no such repository, no access, no connection and no cache).
    """
    try:
        cached_file(repo_id, CONFIG_NAME)
    except OSError as error:  # transformers' message names the repository and the reason
        try:
            cached_file(repo_id, ADAPTER_CONFIG_NAME)  # an adapter repository has no config.json
        except OSError:
            reason = " ".join(str(error).split())
            raise MissingPathError(
                f"{what} {repo_id} is not a local path, and the Hub did not give it: {reason}"
            ) from None


def check_model_path(path: str | Path, base_model: str | None = None, what: str = "Model") -> None:
    """Checks, before anything loads, that a model path exists and, for an adapter, that its base does.

    A local-looking path that does not exist, a directory that is neither a checkpoint (`config.json`) nor an adapter,
    an adapter whose recorded base (`base_model_name_or_path` in `adapter_config.json`) has moved, and a `base_model`
    given for a full checkpoint are each reported by name; a Hub id is left to `from_pretrained`.

    Args:
        path (`str` or `Path`): a checkpoint directory, an adapter directory or a Hub id.
        base_model (`str`, *optional*): the base given on the command line for an adapter (`--base_model`).
        what (`str`, *optional*, defaults to `"Model"`): what `path` is, for the messages.

    Raises:
        `FileNotFoundError` or `ValueError`: naming the path and what to pass instead.
    """
    check_local_path(path, what)
    if not Path(path).is_dir():
        if Path(path).exists():
            raise UsageError(f"{what} {path} is a file; give the checkpoint's directory or a Hub id.")
        if base_model:
            raise UsageError(f"--base_model is for a LoRA adapter directory, and {what.lower()} {path} is not one.")
        check_hub_model(str(path), what)
        return
    if is_adapter_dir(path):
        if base_model:
            check_model_path(base_model, what="Base model (--base_model)")
            return
        base = adapter_base_model(path)
        if is_adapter_dir(base):  # a DPO adapter over an SFT adapter: check down the chain
            check_model_path(base, what=f"The base of {what.lower()} {path}")
            return
        if looks_like_local_path(base) and not (Path(base) / "config.json").is_file():
            state = "does not exist" if not Path(base).exists() else "holds no config.json"
            raise MissingPathError(
                f"{what} {path} is a LoRA adapter whose base model {base} (base_model_name_or_path in "
                f"{Path(path) / ADAPTER_CONFIG_NAME}) {state}; pass --base_model with the base checkpoint's path."
            )
        if not looks_like_local_path(base):
            check_hub_model(base, f"The base of {what.lower()} {path}")
        return
    if base_model:
        raise UsageError(
            f"--base_model is for a LoRA adapter directory; {path} is a full checkpoint (no {ADAPTER_CONFIG_NAME})."
        )
    if not (Path(path) / "config.json").is_file():
        raise MissingPathError(
            f"{what} {path} is a directory with neither config.json nor {ADAPTER_CONFIG_NAME}: not a checkpoint."
        )


def load_for_inference(
    path: str | Path,
    base_model: str | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "cpu",
    attn_implementation: str | None = None,
    load_in_4bit: bool | None = None,
):
    """Loads a model and its processor for generation, in eval mode on `device`.

    Args:
        path (`str` or `Path`):
            A base or merged checkpoint (local directory or Hub id), or a local LoRA adapter directory.
        base_model (`str`, *optional*):
            For an adapter: the base checkpoint to apply it to, overriding `base_model_name_or_path` in its
            `adapter_config.json`. Ignored, with an error, for a full checkpoint.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`):
            Weight dtype; `"auto"` keeps the checkpoint's (`torch_dtype` in its config).
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`):
            Where to put the model.
        attn_implementation (`str`, *optional*):
            `"sdpa"`, `"eager"` or `"flash_attention_2"`; defaults to transformers' choice (sdpa).
        load_in_4bit (`bool`, *optional*):
            `None` loads the base as it was trained: quantised with the recorded settings for a QLoRA adapter, full
            precision otherwise. `True` quantises the base (or the checkpoint) to 4-bit (the recorded settings, else
            NF4 computing in `dtype`); `False` loads full-precision weights.

    Returns:
        `tuple`: `(model, processor)`. For an adapter, `model` is a `PeftModel` whose `generate` and forward run
        base + adapter.
    """
    model_kwargs = {"dtype": dtype, "attn_implementation": attn_implementation}
    base = adapter_base_model(path, base_model) if is_adapter_dir(path) else path
    quantization = base_quantization(path, root_checkpoint(base), load_in_4bit, dtype)
    if quantization is not None:
        if is_adapter_dir(base):
            raise ValueError(f"The base of {path} is itself an adapter ({base}): merge it before loading it in 4-bit.")
        # k-bit weights are placed while they load and cannot be moved afterwards.
        model_kwargs |= {"quantization_config": quantization, "device_map": {"": str(device)}}
    if is_adapter_dir(path):
        from peft import PeftModel  # imported on use, as in `adapter_base_model`

        model = load_merged(base, **model_kwargs)
        model = PeftModel.from_pretrained(model, path)
        processor = AutoProcessor.from_pretrained(path if has_processor_files(path) else base)
    else:
        if base_model:
            raise UsageError(f"{path} is not a LoRA adapter directory (no {ADAPTER_CONFIG_NAME}); drop base_model.")
        model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
        processor = AutoProcessor.from_pretrained(path)
    if quantization is None:
        model.to(device)
    model.eval()
    return model, processor


def parse_model_specs(specs: Sequence[str]) -> dict[str, str]:
    """`["sft=outputs/demo", "outputs/demo-dpo"]` -> `{"sft": "outputs/demo", "demo-dpo": "outputs/demo-dpo"}`: a
    bare path is named after its last component.

    Raises:
        `ValueError`: for an empty name or path, or a name given twice.
    """
    models = {}
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
        if not name or not path or name in models:
            raise UsageError(f"Bad or duplicate --model {spec!r}; expected distinct NAME=PATH entries.")
        models[name] = path
    return models
