# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Writes a tiny random Phi-3-V checkpoint (2 layers, 64 wide, 56 px crops) in the Hub layout, for the demo and tests.

Usage:

    python scripts/make_tiny_model.py --output outputs/tiny-phi3v
    python scripts/make_tiny_model.py --output outputs/tiny-phi3v-16 --num_crops 16
"""

import argparse

from phi3v.checks import positive_int
from phi3v.errors import run_script, usage_errors
from phi3v.fixtures.tiny_model import make_tiny_checkpoint
from phi3v.outputs import prepare_output_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="Directory to write; must not exist or be empty.")
    parser.add_argument(
        "--num_crops", type=positive_int, default=4, help="The image processor's default number of HD crops."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    args = usage_errors(parser).parse_args()
    prepare_output_dir(args.output, kind="model", written_by="scripts/make_tiny_model.py")
    output_dir = make_tiny_checkpoint(args.output, num_crops=args.num_crops, seed=args.seed)
    print(f"Tiny Phi-3-V written to {output_dir}")


if __name__ == "__main__":
    run_script(main)
