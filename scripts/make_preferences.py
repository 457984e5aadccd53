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

import functools
import json
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field, replace

import datasets
import torch

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.arguments import GenerationArguments, ModelLoadingArguments, OutputArguments, ScriptArgumentParser
from phi3v.checks import check_local_path
from phi3v.data.image_columns import undecoded
from phi3v.data.loading import load_splits
from phi3v.data.validation import check_splits, conversation_check
from phi3v.errors import UsageError, run_script
from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import check_model_path, load_for_inference
from phi3v.modeling.chat_format import build_prompt
from phi3v.outputs import check_output_dir, prepare_output_dir
from phi3v.tasks import CatalogueTask
from phi3v.tasks.catalogue import prompt_messages, to_conversation
from phi3v.tasks.catalogue.negatives import HARD_NEGATIVE_KINDS, HardNegatives, build_preference_pairs
from phi3v.tasks.config import CATALOGUE, TaskConfig, load_task_config


PREFERENCES_KIND = "preferences"
SCRIPT = "scripts/make_preferences.py"


@dataclass
class PreferenceArguments:
    """The catalogue paired up, the SFT model whose mistakes are the rejected answers, and the hard negatives; model
    loading, generation (on-policy only) and output flags are `phi3v.arguments`'."""

    dataset: str = field(metadata={"help": "Prepared catalogue directory (datasets.load_from_disk)."})
    model: str | None = field(
        default=None, metadata={"help": "SFT model (full, merged or LoRA adapter directory) for on-policy pairs."}
    )
    splits: list[str] = field(
        default_factory=lambda: ["train", "validation"], metadata={"help": "Catalogue splits to pair up."}
    )
    kinds: list[str] = field(
        default_factory=lambda: list(HARD_NEGATIVE_KINDS),
        metadata={"help": "Hard negatives.", "choices": HARD_NEGATIVE_KINDS},
    )
    price_offset: list[float] = field(
        default_factory=lambda: [0.1, 0.4], metadata={"help": "Relative price error range: two numbers, LOW HIGH."}
    )
    question: str | None = field(
        default=None, metadata={"help": "The user's question; default: the SFT model's (phi3v_task.json)."}
    )
    answer_template: str | None = field(
        default=None, metadata={"help": "The answer template; default: the SFT model's (phi3v_task.json)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the hard-negative draws."})
    drop_invalid_rows: bool = field(
        default=False,
        metadata={
            "help": "Leave out the catalogue rows that cannot be paired (a missing or empty title, category or price, "
            "an unreadable image, ...) instead of stopping with the list; manifest.json lists them and why."
        },
    )
    allow_local_paths: bool = field(
        default=False,
        metadata={
            "help": "Let a local dataset's rows name image files outside its folder (a Hub dataset's never read "
            "local files)."
        },
    )

    def __post_init__(self):
        # `HfArgumentParser` takes one or more values for a list; argparse's `nargs=2` said two.
        if len(self.price_offset) != 2:
            raise UsageError("argument --price_offset: expected 2 arguments")
        low, high = self.price_offset
        if not 0 < low <= high:
            raise UsageError(f"--price_offset must be two relative errors with 0 < LOW <= HIGH, got {low} {high}.")


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser(
        (PreferenceArguments, ModelLoadingArguments, GenerationArguments, OutputArguments), description=__doc__
    )


def main(
    args: PreferenceArguments,
    model_args: ModelLoadingArguments,
    generation_args: GenerationArguments,
    output_args: OutputArguments,
) -> dict:
    check_local_path(args.dataset, "Dataset")
    if args.model:
        check_model_path(args.model, model_args.base_model)
    inputs = [args.dataset, args.model, model_args.base_model]
    check_output_dir(output_args.output_dir, output_args.overwrite, inputs, kind=PREFERENCES_KIND)
    catalogue = load_splits(args.dataset, args.splits, allow_local_paths=args.allow_local_paths)
    # Pairs are catalogue answers, asked and written as the SFT model was trained (its `phi3v_task.json`).
    saved = (load_task_config(args.model) if args.model else None) or TaskConfig()
    overrides = {key: getattr(args, key) for key in ("question", "answer_template") if getattr(args, key)}
    task = CatalogueTask(replace(saved, task=CATALOGUE, **overrides))
    question, template = task.question, task.template
    # Every catalogue row is checked as the SFT model's training read it; bad rows stop the run, or are left out.
    check = conversation_check(functools.partial(to_conversation, question=question, template=template))
    checked = check_splits(
        catalogue,
        check,
        args.drop_invalid_rows,
        args.dataset,
        way_out="Fix those rows, or pass --drop_invalid_rows to leave them out (manifest.json then lists them).",
    )
    catalogue = checked.splits
    template.check_round_trip(undecoded(catalogue[args.splits[0]]).remove_columns("image"))
    output = prepare_output_dir(
        output_args.output_dir, output_args.overwrite, inputs, kind=PREFERENCES_KIND, written_by=SCRIPT
    )

    model = processor = None
    if args.model:
        model, processor = load_for_inference(
            args.model,
            model_args.base_model,
            dtype=model_args.dtype,
            device=model_args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
            attn_implementation=model_args.attn_implementation,
            load_in_4bit=model_args.load_base_in_4bit,
        )
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
                batch_size=generation_args.batch_size,
                max_new_tokens=generation_args.max_new_tokens,
                num_crops=generation_args.num_crops,
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
        **({"dropped_rows": checked.report()} if checked.problems else {}),
        "command": shlex.join([sys.executable, *sys.argv]),
    }
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["splits"], indent=2))
    print(f"Preference pairs saved to {output}")
    return manifest


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
