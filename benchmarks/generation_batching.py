"""Speed of batched greedy generation against one-at-a-time generation, measured side by side in one run.

Both settings answer the same products with the same model (`phi3v.inference.generation.generate_answers`, left
padding, KV cache), chunk by chunk in alternating order, so that drifts in machine load hit both alike. The answers
are checked to be identical, then the speed-up of each batch size over batch 1 (the ratio of the median times) is
printed, and written to `--output_json` if given.

Run as (CPU; by default a tiny random checkpoint and a small synthetic catalogue are built in a temporary folder):

    python benchmarks/generation_batching.py
    python benchmarks/generation_batching.py --model outputs/demo --dataset data/synthetic --num_samples 64
"""

import argparse
import json
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch

from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue
from phi3v.fixtures.tiny_model import make_tiny_checkpoint
from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import load_for_inference
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks.catalogue import prompt_messages


def time_generation(model, processor, prompts, images, batch_size: int, max_new_tokens: int) -> tuple[float, list]:
    start = time.perf_counter()
    answers = generate_answers(
        model, processor, prompts, images, batch_size=batch_size, max_new_tokens=max_new_tokens, show_progress=False
    )
    return time.perf_counter() - start, answers


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.num_threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model or make_tiny_checkpoint(Path(scratch) / "tiny")
        dataset_path = args.dataset
        if dataset_path is None:
            dataset_path = Path(scratch) / "catalogue"
            make_synthetic_catalogue(dataset_path, num_products=2 * args.num_samples + 20, seed=0, test_fraction=0.5)
        model, processor = load_for_inference(model_path, dtype=args.dtype, device=args.device)
        split = datasets.load_from_disk(str(dataset_path))[args.split]
        split = split.select(range(min(args.num_samples, len(split))))
        images = [[image] for image in split["image"]]  # decoded once, outside the timings
        prompts = [build_prompt(processor, prompt_messages())] * len(images)

        # Warm-up: first calls pay for lazy initialisation (kernels, allocator) that neither setting should carry.
        for batch_size in args.batch_sizes:
            time_generation(model, processor, prompts[:batch_size], images[:batch_size], batch_size, 4)
        # Side by side: every chunk of products is answered by each setting in turn (the order alternating), so a
        # change in machine load during the run slows both settings alike.
        chunk = math.lcm(*args.batch_sizes)
        times = {batch_size: [0.0] * args.repeats for batch_size in args.batch_sizes}
        answers = {batch_size: [] for batch_size in args.batch_sizes}
        for repeat in range(args.repeats):
            for index, start in enumerate(range(0, len(prompts), chunk)):
                window = slice(start, start + chunk)
                order = args.batch_sizes if (repeat + index) % 2 == 0 else args.batch_sizes[::-1]
                for batch_size in order:
                    seconds, chunk_answers = time_generation(
                        model, processor, prompts[window], images[window], batch_size, args.max_new_tokens
                    )
                    times[batch_size][repeat] += seconds
                    if repeat == 0:
                        answers[batch_size] += chunk_answers

    reference = args.batch_sizes[0]
    mismatches = {
        b: sum(x != y for x, y in zip(answers[b], answers[reference], strict=True)) for b in args.batch_sizes
    }
    median = {batch_size: statistics.median(seconds) for batch_size, seconds in times.items()}
    result = {
        "model": str(args.model or "tiny random Phi-3-V"),
        "num_samples": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "device": str(model.device),
        "dtype": str(model.dtype),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "repeats": args.repeats,
        "seconds": {str(b): times[b] for b in args.batch_sizes},
        "samples_per_second": {str(b): len(prompts) / median[b] for b in args.batch_sizes},
        "speedup_over_first": {str(b): median[reference] / median[b] for b in args.batch_sizes},
        "answers_differing_from_first": {str(b): mismatches[b] for b in args.batch_sizes},
    }
    print(f"{len(prompts)} samples, max_new_tokens={args.max_new_tokens}, {result['device']}, {result['dtype']}, ")
    print(f"{result['threads']} threads, median of {args.repeats} repeats, chunks of {chunk} products interleaved")
    print("| batch size | median s | samples/s | speed-up vs batch " + f"{reference} | answers differing |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for b in args.batch_sizes:
        row = [b, f"{median[b]:.2f}", f"{len(prompts) / median[b]:.2f}", f"{median[reference] / median[b]:.2f}x"]
        print("| " + " | ".join(map(str, [*row, mismatches[b]])) + " |")
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Checkpoint or adapter; default: a fresh tiny random model.")
    parser.add_argument("--dataset", default=None, help="Prepared catalogue; default: a fresh synthetic one.")
    parser.add_argument("--split", default="test", help="Split whose first products are answered.")
    parser.add_argument("--num_samples", type=int, default=32, help="Products answered per timing.")
    parser.add_argument(
        "--batch_sizes", type=int, nargs="+", default=[1, 8], help="Batch sizes; the first is the reference."
    )
    parser.add_argument("--max_new_tokens", type=int, default=32, help="Generation budget per answer.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes over the products per batch size.")
    parser.add_argument("--dtype", default="float32", help="Weight dtype (`auto` keeps the checkpoint's).")
    parser.add_argument("--device", default="cpu", help="Device to run on.")
    parser.add_argument("--num_threads", type=int, default=None, help="torch CPU threads (default: torch's).")
    parser.add_argument("--output_json", default=None, help="Also write the measurements to this JSON file.")
    return parser


if __name__ == "__main__":
    main(make_parser().parse_args())
