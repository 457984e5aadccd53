"""Merge a LoRA adapter into its base model and save a standalone checkpoint in the official Phi-3-V layout.

Run as:

    python scripts/merge_lora.py --adapter outputs/phi3v-burberry --output_dir outputs/phi3v-burberry-merged
    python scripts/merge_lora.py --adapter outputs/phi3v-burberry --base_model /models/Phi-3-vision-128k-instruct \
        --output_dir outputs/phi3v-burberry-merged --dtype bfloat16

The output has the base's `config.json` keys and tensor names, the processor, and the base's remote-code files, so it
loads with `AutoModelForCausalLM.from_pretrained` (after `import phi3v`), with `trust_remote_code=True`, and in vLLM.
The script checks the layout against the base's and fails if they differ.

A QLoRA adapter (trained on a 4-bit base) is merged into the dequantised 4-bit base by default: the output is a
full-precision checkpoint equal to the 4-bit base + adapter up to float error, not the original base + adapter
(`phi3v.inference.merge`). `--load_in_4bit false` merges it into the original full-precision weights instead.
"""

from dataclasses import dataclass, field

from phi3v.arguments import ScriptArgumentParser, check_flag
from phi3v.checks import DTYPES, auto_bool
from phi3v.errors import UsageError, run_script
from phi3v.inference.loading import adapter_base_model, check_model_path, is_adapter_dir, root_checkpoint
from phi3v.inference.merge import layout_differences, local_checkpoint_dir, merge_lora
from phi3v.inference.quantization import recorded_base_quantization
from phi3v.outputs import prepare_output_dir


@dataclass
class MergeArguments:
    """The adapter, its base and the merged checkpoint. `--dtype` and `--load_in_4bit` take the values of
    `phi3v.arguments.ModelLoadingArguments`, for the merge: the dtype of the saved weights, and the base merged into."""

    adapter: str = field(metadata={"help": "The LoRA adapter directory (with adapter_config.json)."})
    output_dir: str = field(metadata={"help": "Where to save the merged checkpoint; must be empty."})
    base_model: str | None = field(
        default=None, metadata={"help": "Base checkpoint; defaults to base_model_name_or_path in the adapter config."}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype of the saved weights; `auto` keeps the base's. The merge itself is computed in float32.",
            "choices": DTYPES,
        },
    )
    load_in_4bit: str = field(
        default="auto",
        metadata={
            "help": "`auto` (default): merge into the base as the adapter trained on it (a QLoRA adapter: the "
            "dequantised 4-bit base, settings from base_quantization_config.json); `true`: the dequantised 4-bit base "
            "(NF4 unless recorded); `false`: the original full-precision base.",
            "metavar": "{auto,true,false}",
        },
    )
    max_shard_size: str = field(default="5GB", metadata={"help": "Largest safetensors shard (the Hub uses ~5GB)."})

    def __post_init__(self):
        check_flag("load_in_4bit", self.load_in_4bit, auto_bool)


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser((MergeArguments,), description=__doc__)


def main(args: MergeArguments) -> None:
    check_model_path(args.adapter, args.base_model, what="Adapter")
    if not is_adapter_dir(args.adapter):
        raise UsageError(
            f"{args.adapter} is a full checkpoint, not a LoRA adapter (no adapter_config.json): there is nothing to "
            "merge, it loads as it is."
        )
    base = adapter_base_model(args.adapter, args.base_model)
    prepare_output_dir(args.output_dir, inputs=[args.adapter, base], kind="model", written_by="scripts/merge_lora.py")
    recorded = recorded_base_quantization(args.adapter) is not None
    load_in_4bit = auto_bool(args.load_in_4bit)
    dequantised = load_in_4bit or (load_in_4bit is None and recorded)
    print(f"Merging {args.adapter} into {base}" + (", quantised to 4-bit then dequantised" if dequantised else ""))
    output_dir = merge_lora(
        args.adapter,
        args.output_dir,
        base_model=base,
        dtype=args.dtype,
        max_shard_size=args.max_shard_size,
        load_in_4bit=load_in_4bit,
    )
    checkpoint = root_checkpoint(base)  # the full checkpoint under a chain of adapters (DPO over SFT)
    differences = layout_differences(local_checkpoint_dir(checkpoint), output_dir)
    if differences:
        raise RuntimeError(f"{output_dir} departs from the layout of {checkpoint}:\n" + "\n".join(differences))
    print(f"Saved the merged model and processor to {output_dir}; config keys and tensor names match {checkpoint}.")


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
