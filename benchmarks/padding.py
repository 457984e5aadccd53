"""How much of a batch is padding, with and without `train_sampling_strategy: group_by_length`.

Phi-3-V's image token count depends on the image's shape: at `num_crops=4` photos from 1:1 to 3:2 take 757 tokens
and a 2:1 banner 457; at 16 crops a square photo takes 2,509, a 3:4 portrait 1,933 and a 4:3 landscape 1,921. Batches
padded to their longest row therefore waste compute on padding unless rows of similar length are batched together. This script counts that waste
on a catalogue-like mix of photo shapes, for random batches and for the length-grouped order of transformers'
`Trainer` (`get_length_grouped_indices`, the order `group_by_length` produces from our `length` column). Lengths come
from `Phi3VSFTCollator.sequence_length`, as in training: the real image geometry (336 px crops, 144 tokens each) and
the full chat-template conversation. No model, no network, no pixels.

Run as:

    python benchmarks/padding.py
    python benchmarks/padding.py --rows 3000 --per_device_train_batch_size 8 --gradient_accumulation_steps 2
"""

import argparse
import random
import struct
import zlib

import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from phi3v.fixtures.tiny_model import build_tiny_tokenizer
from phi3v.modeling import Phi3VImageProcessor, Phi3VProcessor
from phi3v.tasks.catalogue import to_conversation
from phi3v.training import Phi3VSFTCollator, padding_share


# Share of each photo shape (width:height) in the mix: mostly square and portrait packshots, a few landscape banners.
SHAPES = {(1, 1): 0.45, (4, 5): 0.20, (3, 4): 0.15, (2, 3): 0.10, (4, 3): 0.05, (2, 1): 0.05}
WORDS = [
    "Check",
    "Wool",
    "Cashmere",
    "Scarf",
    "Quilted",
    "Leather",
    "Crossbody",
    "Bag",
    "Trench",
    "Coat",
    "Cotton",
    "Polo",
    "Shirt",
    "Monogram",
    "Belt",
]
CATEGORIES = ["SCARVES", "TRENCH COATS", "CROSSBODY BAGS", "POLO SHIRTS", "BELTS", "N.A."]


def png_header(width: int, height: int) -> bytes:
    """The first bytes of an RGB PNG of `width` x `height`: enough for PIL to read its size, no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", b"")
    )


def catalogue_rows(num_rows: int, seed: int) -> list[dict]:
    """Rows with the catalogue's columns: a photo size drawn from `SHAPES` (long side 600-2,000 px) and a title of
    2-9 words; `image` is a PNG file header of that size without pixels, since lengths never decode an image."""
    rng = random.Random(seed)
    rows = []
    for _ in range(num_rows):
        (w, h), long_side = rng.choices(list(SHAPES), weights=list(SHAPES.values()))[0], rng.randrange(600, 2001)
        scale = long_side / max(w, h)
        rows.append(
            {
                "image": {"bytes": png_header(round(w * scale), round(h * scale)), "path": None},
                "title": " ".join(rng.choices(WORDS, k=rng.randint(2, 9))),
                "category3_code": rng.choice(CATEGORIES),
                "full_price": float(rng.randrange(190, 4000, 10)),
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2400, help="Catalogue rows (the Burberry train split has ~2,400).")
    parser.add_argument("--per_device_train_batch_size", type=int, default=4)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = catalogue_rows(args.rows, args.seed)
    batch_size = args.per_device_train_batch_size
    print(
        f"{args.rows} rows, batches of {batch_size}, grouped within {args.gradient_accumulation_steps} accumulation steps"
    )
    print("| num_crops | tokens per row (min-max) | padding, random batches | padding, group_by_length | ratio |")
    print("|---|---|---|---|---|")
    for num_crops in (4, 16):
        processor = Phi3VProcessor(Phi3VImageProcessor(num_crops=num_crops), build_tiny_tokenizer())
        collator = Phi3VSFTCollator(processor, to_conversation=to_conversation)
        lengths = [collator.sequence_length(row) for row in rows]
        generator = torch.Generator().manual_seed(args.seed)
        random_order = torch.randperm(len(rows), generator=generator).tolist()
        grouped_order = get_length_grouped_indices(
            lengths, batch_size * args.gradient_accumulation_steps, generator=generator
        )
        shares = []
        for order in (random_order, grouped_order):
            batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            shares.append(padding_share(lengths, batches))
        print(
            f"| {num_crops} | {min(lengths)}-{max(lengths)} | {shares[0]:.1%} | {shares[1]:.1%} | "
            f"{shares[0] / shares[1]:.1f}x less padding |"
        )


if __name__ == "__main__":
    main()
