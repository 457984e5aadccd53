"""Training throughput of a recipe on a randomly initialised real-size Phi-3-V, next to the Cookbook's figures.

The model is built from a config (`config.json` of a Hub checkpoint or a local copy; no weights are downloaded) in the
recipe's dtype, with its attention implementation, `num_crops`, activation checkpointing, freezing, LoRA targets and
rank (`phi3v.training.lora_config`), 4-bit base (QLoRA: the recipe's bitsandbytes config) and AdamW betas/eps. Synthetic DocVQA-like
pages go through the real processor and `Phi3VSFTCollator` (page shapes chosen so a sequence averages about the
Cookbook's 2,443 tokens at `num_crops=16`); batches are collated before the clock starts (the training script's
dataloader workers hide that cost). After warm-up, `--benchmark_steps` optimizer steps (each of
`gradient_accumulation_steps` micro-batches) are timed. Printed as a markdown table, written as JSON with `--output`.
One process holds all the optimizer state, which the Cookbook's full and frozen-vision rows shard over 8 GPUs with
ZeRO-2: their memory is lower than a single GPU's here.

Model FLOPs (PaLM's MFU convention, no recomputation counted) for each part p (CLIP layers Phi-3-V runs, projector,
language model without the embedding) with N_p parameters, n_p tokens (CLIP: 577 patches per real crop; projector:
image tokens; language model: non-padding tokens) and attention a_p = sum over sequences of L_p * d_p * s^2 (causal in
the language model, counted as half of CLIP's 2 * L * d * s^2):

    FLOPs_p = (2 + 2 * g_p) * (N_p * n_p + 2 * a_p) + 2 * T_p * n_p

with g_p = 1 when a gradient has to flow through p (p or a part before it trains) and T_p its trainable parameters:
6N per token for a trained part, 4N for a frozen part with LoRA or trained parts below it, 2N for a frozen part above
nothing trained. MFU = model FLOPs / time / peak; peak is `--peak_tflops`, else 312 (A100) or 989 (H100, H200) bf16
dense TFLOP/s from the device name, else a timed 1024^3 linear layer in the run's dtype (CPU).

GPU (one process; per-GPU images/s compare with the Cookbook's figure / 8; `--model_config` is a folder with the
Hub files without weights, or a Hub id):

    python benchmarks/recipe_throughput.py recipes/cookbook/docvqa/sft-lora.yaml \
      --model_config /path/to/Phi-3-vision-128k-instruct --output docvqa-lora.json
    python benchmarks/recipe_throughput.py recipes/cookbook/docvqa/sft-full.yaml \
      --model_config microsoft/Phi-3-vision-128k-instruct
    python benchmarks/recipe_throughput.py recipes/cookbook/nlvr2/sft-full-phi3.5.yaml \
      --model_config /path/to/Phi-3.5-vision-instruct

CPU, tiny (seconds; `--use_cpu true` lets a bf16 recipe parse without a GPU):

    python scripts/make_tiny_model.py --output outputs/tiny-phi3v
    python benchmarks/recipe_throughput.py recipes/cookbook/docvqa/sft-lora.yaml --model_config outputs/tiny-phi3v \
      --use_cpu true --gradient_accumulation_steps 1 --benchmark_warmup 1 --benchmark_steps 1 --output tiny.json

CPU, real size, one LoRA step at one crop per page (what fits in 24 GiB; benchmarks/README.md has the numbers):

    OMP_NUM_THREADS=2 python benchmarks/recipe_throughput.py recipes/cookbook/docvqa/sft-lora.yaml \
      --model_config ../shared/hub_files/Phi-3-vision-128k-instruct --use_cpu true --attn_implementation sdpa \
      --num_crops 1 --gradient_accumulation_steps 1 --benchmark_warmup 0 --benchmark_steps 1
"""

import json
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from peft import get_peft_model
from PIL import Image, ImageDraw
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor
from transformers.utils import is_bitsandbytes_available, is_flash_attn_2_available
from trl import SFTConfig, TrlParser, get_quantization_config

from phi3v.data.converters import from_docvqa
from phi3v.modeling.image_features import count_image_tokens, crop_grid
from phi3v.planning.parallelism import Parallelism, detect_gpu
from phi3v.planning.plan import make_plan
from phi3v.planning.tokens import TokenStats
from phi3v.tasks import PUBLISHED_THROUGHPUT
from phi3v.training import (
    Phi3VModelConfig,
    Phi3VScriptArguments,
    Phi3VSFTCollator,
    freeze_parts,
    lora_config,
)
from phi3v.training.cli import parse_recipe


# Portrait pages: 2,509 image tokens at 16 crops for the first, 2,377 for the others; with the question and answer a
# sequence averages ~2,440 tokens over the cycle, the Cookbook's DocVQA measurement (2,443).
PAGE_SIZES = [(1700, 2200), (1200, 2000), (1200, 2000), (1200, 2000)]
PEAK_TFLOPS = {"A100": 312.0, "H100": 989.0, "H200": 989.0}  # dense bf16 tensor-core peak per GPU


@dataclass
class BenchmarkArguments:
    model_config: str | None = field(
        default=None, metadata={"help": "Config + processor dir or Hub id; defaults to model_name_or_path."}
    )
    benchmark_steps: int = field(default=3, metadata={"help": "Timed optimizer steps."})
    benchmark_warmup: int = field(default=1, metadata={"help": "Untimed optimizer steps first."})
    output: str | None = field(default=None, metadata={"help": "JSON file of the results."})
    peak_tflops: float | None = field(default=None, metadata={"help": "Peak TFLOP/s of the device, for MFU."})
    plan: bool = field(default=False, metadata={"help": "Fill the plan's predicted column."})


def synthetic_rows(num_rows: int) -> list[dict]:
    """DocVQA-like conversations: white pages with dark text lines, the Cookbook's prompt, a short answer."""
    rows = []
    for i in range(num_rows):
        width, height = PAGE_SIZES[i % len(PAGE_SIZES)]
        page = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(page)
        for y in range(80, height - 80, 40):
            draw.rectangle((80, y, 80 + (y * 37 + i * 101) % (width - 200) + 60, y + 18), fill=(30, 30, 30))
        row = {"image": page, "query": {"en": "What is the date written on the letter?"}, "answers": ["May 4, 1998"]}
        rows.append(from_docvqa(row))
    return rows


def cookbook_method(model_args: Phi3VModelConfig) -> str | None:
    """The Cookbook row a recipe's settings match, or None."""
    if model_args.use_peft:
        return "qlora" if model_args.load_in_4bit else "lora"
    if model_args.freeze_language_model:
        return None
    vision_frozen = model_args.freeze_vision_tower and model_args.freeze_projector
    return "frozen-vision" if vision_frozen else None if model_args.freeze_vision_tower else "full"


def build_model(
    model_args: Phi3VModelConfig, training_args: SFTConfig, config, attn: str, dtype: torch.dtype, device: torch.device
):
    """A randomly initialised model with the recipe's dtype, attention, freezing, LoRA and 4-bit base, and its parts'
    `{part: [params, trainable params]}` (the CLIP layers Phi-3-V runs, the projector, the language model without the
    embedding)."""
    config.use_cache = not training_args.activation_checkpointing
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    quantised = model_args.load_in_4bit or model_args.load_in_8bit
    if quantised:
        # bitsandbytes quantises while loading, so the random weights go through a checkpoint; loaded as `load_model`
        # loads, but onto this device (its device map names a GPU, which the CPU run has not).
        with tempfile.TemporaryDirectory() as checkpoint:
            model.save_pretrained(checkpoint)
            model = AutoModelForCausalLM.from_pretrained(
                checkpoint,
                dtype=dtype,
                attn_implementation=attn,
                use_cache=config.use_cache,
                quantization_config=get_quantization_config(model_args),
                device_map={"": device},
            )
    model.freeze_unused_vision_parameters()
    freeze_parts(model, model_args)
    tower = model.model.vision_embed_tokens.img_processor.vision_model
    unused = {id(parameter) for parameter in tower.unused_parameters(config.image_feature_layer)}
    if training_args.activation_checkpointing:
        # Also makes the embeddings' output require grad, which LoRA under checkpointing needs (as TRL ensures).
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=training_args.activation_checkpointing_kwargs
        )
    peft_config = lora_config(model_args, model)
    if peft_config is not None:
        model = get_peft_model(model, peft_config)
        for parameter in model.parameters():
            if quantised and parameter.requires_grad:  # as TRL's SFTTrainer: bf16 adapters on a k-bit base
                parameter.data = parameter.data.to(torch.bfloat16)
    counts = {"vision": [0, 0], "projector": [0, 0], "language": [0, 0]}
    for name, parameter in model.named_parameters():
        if id(parameter) in unused or name.endswith("embed_tokens.weight"):
            continue
        part = "vision" if ".img_processor." in name else "projector" if "vision_embed_tokens" in name else "language"
        numel = parameter.numel() * (2 if parameter.dtype == torch.uint8 else 1)  # 4-bit: two weights per byte
        counts[part][0] += numel
        counts[part][1] += numel if parameter.requires_grad else 0
    return model, counts


def model_flops(batch: dict, counts: dict, config) -> float:
    """The model FLOPs of one forward and backward of `batch` (the formula of the module docstring)."""
    vision = config.vision_tower_config()
    grid, layers = vision.image_size // vision.patch_size, config.image_feature_layer % (vision.num_hidden_layers + 1)
    grids = [crop_grid(h, w, vision.image_size) for h, w in batch["image_sizes"].tolist()]
    crops, patches = sum(1 + rows * cols for rows, cols in grids), grid**2 + 1
    lengths = batch["attention_mask"].sum(dim=1).double()
    tokens = {
        "vision": crops * patches,
        "projector": sum(count_image_tokens(rows, cols, 1, grid // 2) for rows, cols in grids),
        "language": float(lengths.sum()),
    }
    attention = {  # L * d * s^2 summed over sequences (CLIP: crops); the language model's is causal, so halved
        "vision": layers * vision.hidden_size * crops * patches**2,
        "projector": 0,
        "language": config.num_hidden_layers * config.hidden_size * float((lengths**2).sum()) / 2,
    }
    flops, gradient = 0.0, False
    for part in ("vision", "projector", "language"):  # the order of the forward
        params, trainable = counts[part]
        gradient = gradient or trainable > 0
        flops += (2 + 2 * gradient) * (params * tokens[part] + 2 * attention[part]) + 2 * trainable * tokens[part]
    return flops


def peak_tflops(requested: float | None, device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """The device's peak TFLOP/s for MFU and where it comes from."""
    if requested is not None:
        return requested, "--peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for gpu, tflops in PEAK_TFLOPS.items():
            if gpu in name:
                return tflops, f"{gpu} dense bf16"
        raise ValueError(f"No peak TFLOP/s known for {name}: pass --peak_tflops.")
    # A linear layer's kernel (oneDNN), as the model's; a bare bf16 `a @ b` takes a far slower path on AVX2 CPUs.
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    torch.nn.functional.linear(a, b)  # the first call allocates and picks kernels
    start = time.perf_counter()
    for _ in range(3):
        torch.nn.functional.linear(a, b)
    return 3 * 2 * 1024**3 / (time.perf_counter() - start) / 1e12, f"timed 1024^3 {str(dtype)[6:]} linear"


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux: the process's peak RSS


def plan_prediction(
    model_args: Phi3VModelConfig, training_args: SFTConfig, config, attn: str, tokens_per_sequence: float
) -> dict:
    """The plan's prediction for this run (`phi3v.planning`): one GPU, the benchmark's measured tokens per sequence
    and attention, `{"images_per_second": ..., "peak_memory_gib": ...}`.

    Args:
        model_args ([`Phi3VModelConfig`]), training_args ([`~trl.SFTConfig`]): the recipe.
        config ([`Phi3VConfig`]): the model's config.
        attn (`str`): the attention implementation the benchmark ran.
        tokens_per_sequence (`float`): the measured average length.
    """
    tokens = TokenStats([tokens_per_sequence], training_args.max_length, "benchmark inputs", assumed=True)
    planned_args = replace(model_args, attn_implementation=attn)
    plan = make_plan(config, planned_args, training_args, tokens, Parallelism(), detect_gpu())
    return {
        "images_per_second": plan.throughput.sequences_per_second,
        "peak_memory_gib": plan.memory.total * 1e9 / 2**30,
        "gpu": plan.gpu.name,
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":  # the clock must not stop before the queued kernels have run
        torch.cuda.synchronize(device)


def run(model, batches: list[dict], training_args: SFTConfig, device: torch.device, warmup: int) -> float:
    """Runs `warmup` then `len(batches) // accumulation - warmup` optimizer steps; the seconds of the timed ones."""
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable,
        lr=training_args.learning_rate,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        weight_decay=training_args.weight_decay,
    )
    model.train()
    accumulation, start = training_args.gradient_accumulation_steps, 0.0
    for step in range(len(batches) // accumulation):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        for batch in batches[step * accumulation : (step + 1) * accumulation]:
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss / accumulation
            loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, training_args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - start


def table(result: dict) -> str:
    """The markdown table: this run, the Cookbook's matching row per GPU, the plan's prediction."""
    lines = ["| | images/s per GPU | tokens/s per GPU | peak memory | MFU |", "|---|---|---|---|---|"]
    if result["skipped"]:
        lines.append(f"| this run | {result['skipped']} | | | |")
    else:
        lines.append(
            f"| this run ({result['device']}, {result['attn_implementation']}, {result['tokens_per_sequence']:.0f} "
            f"tokens/sequence) | {result['images_per_second']:.3f} | {result['tokens_per_second']:.1f} | "
            f"{result['peak_memory_gib']:.2f} GiB ({result['peak_memory_kind']}) | {result['mfu']:.3f} |"
        )
    cookbook = result["cookbook"]
    if cookbook is not None:
        per_gpu = cookbook["images_per_second_per_gpu"]
        lines.append(
            f"| Cookbook {cookbook['method']}{' + FA2' if cookbook['flash_attention'] else ''} ({cookbook['hardware']}, "
            f"{cookbook['images_per_second']} images/s / {cookbook['gpus']}) | {per_gpu:.3f} | "
            f"{per_gpu * cookbook['tokens_per_sequence']:.1f} | {cookbook['memory_gb']} GB | |"
        )
    plan = result["plan"]
    if plan is not None:
        lines.append(f"| plan | {plan['images_per_second']:.3f} | | {plan['peak_memory_gib']:.2f} GiB | |")
    return "\n".join(lines + [f"\n{note}" for note in result["notes"]])


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig, BenchmarkArguments))
    _, training_args, model_args, bench = parse_recipe(parser, argv)
    recipe = argv[argv.index("--config") + 1] if "--config" in argv else argv[0]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    attn, notes = model_args.attn_implementation or "sdpa", []
    if attn == "flash_attention_2" and not is_flash_attn_2_available():
        attn, notes = "sdpa", ["flash_attention_2 asked, sdpa used: flash-attn is not installed (or no GPU)."]
    method = cookbook_method(model_args)
    flash = attn == "flash_attention_2"
    cookbook = next((r for r in PUBLISHED_THROUGHPUT if r.method == method and r.flash_attention == flash), None)
    model_source = bench.model_config or model_args.model_name_or_path
    config = AutoConfig.from_pretrained(model_source)
    dtype = config.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    processor = AutoProcessor.from_pretrained(model_source)
    if model_args.num_crops is not None:
        processor.image_processor.num_crops = model_args.num_crops
    result = {
        "recipe": recipe,
        "model_config": model_source,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "method": method,
        "attn_implementation": attn,
        "dtype": str(dtype)[6:],
        "num_crops": processor.image_processor.num_crops,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "activation_checkpointing": training_args.activation_checkpointing,
        "benchmark_steps": bench.benchmark_steps,
        "benchmark_warmup": bench.benchmark_warmup,
        "cookbook": None
        if cookbook is None
        else {**asdict(cookbook), "images_per_second_per_gpu": cookbook.images_per_second_per_gpu},
        "plan": None,  # filled after the measurement with --plan, at the measured tokens per sequence
        "notes": notes,
        "skipped": None,
    }
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not is_bitsandbytes_available():
        result["skipped"] = "skipped: bitsandbytes not installed"
    else:
        batch_size, accumulation = training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps
        rows = synthetic_rows((bench.benchmark_warmup + bench.benchmark_steps) * accumulation * batch_size)
        collator = Phi3VSFTCollator(processor, training_args.max_length)
        batches = [collator(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
        torch.manual_seed(training_args.seed)
        start = time.perf_counter()
        model, counts = build_model(model_args, training_args, config, attn, dtype, device)
        result["build_seconds"] = time.perf_counter() - start
        peak, peak_source = peak_tflops(bench.peak_tflops, device, dtype)
        seconds = run(model, batches, training_args, device, bench.benchmark_warmup)
        timed = batches[bench.benchmark_warmup * accumulation :]
        tokens = sum(int(batch["attention_mask"].sum()) for batch in timed)
        flops = sum(model_flops(batch, counts, config) for batch in timed)
        result |= {
            "params": counts,
            "seconds": seconds,
            "images_per_second": sum(len(batch["image_sizes"]) for batch in timed) / seconds,
            "tokens_per_second": tokens / seconds,
            "tokens_per_sequence": tokens / (len(timed) * batch_size),
            "peak_memory_gib": peak_memory_gib(device),
            "peak_memory_kind": "max allocated" if device.type == "cuda" else "process peak RSS",
            "model_tflops_per_second": flops / seconds / 1e12,
            "peak_tflops": peak,
            "peak_tflops_source": peak_source,
            "mfu": flops / seconds / 1e12 / peak,
        }
        if cookbook is not None and abs(result["tokens_per_sequence"] / cookbook.tokens_per_sequence - 1) > 0.05:
            notes.append(
                f"{result['tokens_per_sequence']:.0f} tokens per sequence against the Cookbook's "
                f"{cookbook.tokens_per_sequence}: compare tokens/s and MFU rather than images/s."
            )
    if bench.plan and "tokens_per_sequence" in result:
        result["plan"] = plan_prediction(model_args, training_args, config, attn, result["tokens_per_sequence"])
    print(table(result))
    if bench.output is not None:
        Path(bench.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
