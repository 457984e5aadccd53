# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Builds DPO preference pairs from a prepared catalogue: the true answer is chosen; the rejected one is the SFT
model's own wrong answer (on-policy, the default when `--model` is given) or a hard negative made from the truth.

Usage:

    # on-policy pairs from the SFT model's mistakes (right answers fall back to hard negatives)
    python scripts/make_preferences.py --dataset data/burberry --model outputs/phi3v-burberry \
        --output data/burberry-preferences

    # hard negatives only (no model): a price off by 10-40%, a wrong category of the same department, a near-miss title
    python scripts/make_preferences.py --dataset data/synthetic --output outputs/demo-preferences

The output is a `DatasetDict` (`train` and `validation` pairs; columns `images`, `prompt`, `chosen`, `rejected` in
TRL's conversational format, plus `kind` and `product_code`) and a `manifest.json` counting the pairs of each kind.
"""

import argparse
import json
import shlex
import sys
from collections import Counter
from dataclasses import replace

import datasets
import torch

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import check_local_path, positive_int, torch_device
from phi3v.data.image_columns import undecoded
from phi3v.data.loading import load_splits
from phi3v.errors import UsageError, run_script, usage_errors
from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import check_model_path, load_for_inference
from phi3v.modeling.chat_format import build_prompt
from phi3v.outputs import prepare_output_dir
from phi3v.tasks import CatalogueTask
from phi3v.tasks.catalogue import prompt_messages
from phi3v.tasks.catalogue.negatives import HARD_NEGATIVE_KINDS, HardNegatives, build_preference_pairs
from phi3v.tasks.config import CATALOGUE, TaskConfig, load_task_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="Prepared catalogue directory (datasets.load_from_disk).")
    parser.add_argument("--output", required=True, help="Where to write the preference DatasetDict.")
    parser.add_argument("--model", help="SFT model (full, merged or LoRA adapter directory) for on-policy pairs.")
    parser.add_argument("--base_model", help="Base checkpoint of an adapter --model, overriding adapter_config.json.")
    parser.add_argument("--splits", nargs="+", default=["train", "validation"], help="Catalogue splits to pair up.")
    parser.add_argument(
        "--kinds", nargs="+", default=list(HARD_NEGATIVE_KINDS), choices=HARD_NEGATIVE_KINDS, help="Hard negatives."
    )
    parser.add_argument("--price_offset", nargs=2, type=float, default=[0.1, 0.4], help="Relative price error range.")
    parser.add_argument("--question", help="The user's question; default: the SFT model's (phi3v_task.json).")
    parser.add_argument("--answer_template", help="The answer template; default: the SFT model's (phi3v_task.json).")
    parser.add_argument("--batch_size", type=positive_int, default=8, help="Generation batch size (on-policy only).")
    parser.add_argument("--max_new_tokens", type=positive_int, default=64, help="Generation budget (on-policy only).")
    parser.add_argument("--num_crops", type=positive_int, help="Override the processor's num_crops for generation.")
    parser.add_argument(
        "--device",
        type=torch_device,
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Generation device.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the hard-negative draws.")
    parser.add_argument("--overwrite", action="store_true", help="Replace earlier preference pairs in --output.")
    parser.add_argument(
        "--allow_local_paths",
        action="store_true",
        help="Let a local dataset's rows name image files outside its folder (a Hub dataset's never read local files).",
    )
    return usage_errors(parser).parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    check_local_path(args.dataset, "Dataset")
    if args.model:
        check_model_path(args.model, args.base_model)
    inputs = [args.dataset, args.model, args.base_model]
    output = prepare_output_dir(
        args.output, args.overwrite, inputs, kind="preferences", written_by="scripts/make_preferences.py"
    )
    low, high = args.price_offset
    if not 0 < low <= high:
        raise UsageError(f"--price_offset must be two relative errors with 0 < LOW <= HIGH, got {low} {high}.")
    catalogue = load_splits(args.dataset, args.splits, allow_local_paths=args.allow_local_paths)
    # Pairs are catalogue answers, asked and written as the SFT model was trained (its `phi3v_task.json`).
    saved = (load_task_config(args.model) if args.model else None) or TaskConfig()
    overrides = {key: getattr(args, key) for key in ("question", "answer_template") if getattr(args, key)}
    task = CatalogueTask(replace(saved, task=CATALOGUE, **overrides))
    question, template = task.question, task.template
    template.check_round_trip(undecoded(catalogue[args.splits[0]]).remove_columns("image"))

    model = processor = None
    if args.model:
        model, processor = load_for_inference(args.model, args.base_model, device=args.device)
        prompt = build_prompt(processor, prompt_messages(question))

    pair_splits, manifest_splits = {}, {}
    for split in args.splits:
        rows = catalogue[split]
        # Hard negatives draw from the split's own products, so validation pairs never borrow training titles.
        hard_negatives = HardNegatives(rows.remove_columns("image"), template, tuple(args.price_offset), args.seed)
        generated = None
        if model is not None:
            generated = generate_answers(
                model,
                processor,
                [prompt] * len(rows),
                [[image] for image in undecoded(rows)["image"]],
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                num_crops=args.num_crops,
                description=f"Generating ({split})",
            )
        pairs = build_preference_pairs(list(rows), hard_negatives, generated, args.kinds, question)
        features = datasets.Features(
            {
                "images": datasets.Sequence(datasets.Image()),
                "prompt": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
                "chosen": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
                "rejected": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
                "kind": datasets.Value("string"),
                "product_code": datasets.Value("string"),
            }
        )
        pair_splits[split] = datasets.Dataset.from_list(pairs, features=features)
        manifest_splits[split] = {"pairs": len(pairs), "pairs_per_kind": dict(Counter(p["kind"] for p in pairs))}
        if generated is not None:
            manifest_splits[split]["sft_answers_correct"] = len(pairs) - manifest_splits[split]["pairs_per_kind"].get(
                "on_policy", 0
            )

    datasets.DatasetDict(pair_splits).save_to_disk(output)
    manifest = {
        "source": str(args.dataset),
        "model": args.model,
        "rejected": "on_policy (SFT mistakes), else hard negatives" if args.model else "hard negatives",
        "hard_negative_kinds": args.kinds,
        "question": question,
        "answer_template": template.template,
        "price_offset_range": args.price_offset,
        "seed": args.seed,
        "splits": manifest_splits,
        "command": shlex.join([sys.executable, *sys.argv]),
    }
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["splits"], indent=2))
    print(f"Preference pairs saved to {output}")
    return manifest


if __name__ == "__main__":
    run_script(lambda: main(parse_args()))
