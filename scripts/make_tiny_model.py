# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Writes a tiny random Phi-3-V checkpoint (2 layers, 64 wide, 56 px crops) in the Hub layout, for the demo and tests.

Usage:

    python scripts/make_tiny_model.py --output outputs/tiny-phi3v
    python scripts/make_tiny_model.py --output outputs/tiny-phi3v-16 --num_crops 16
"""

from dataclasses import dataclass, field

from phi3v.arguments import ScriptArgumentParser, check_flag
from phi3v.checks import positive_int
from phi3v.errors import run_script
from phi3v.fixtures.tiny_model import make_tiny_checkpoint
from phi3v.outputs import prepare_output_dir


@dataclass
class TinyModelArguments:
    """Where the tiny checkpoint goes, its processor's crops and its weights' seed."""

    output: str = field(metadata={"help": "Directory to write; must not exist or be empty."})
    num_crops: int = field(default=4, metadata={"help": "The image processor's default number of HD crops."})
    seed: int = field(default=0, metadata={"help": "Seed of the random weights."})

    def __post_init__(self):
        check_flag("num_crops", self.num_crops, positive_int)


def main(args: TinyModelArguments) -> None:
    prepare_output_dir(args.output, kind="model", written_by="scripts/make_tiny_model.py")
    output_dir = make_tiny_checkpoint(args.output, num_crops=args.num_crops, seed=args.seed)
    print(f"Tiny Phi-3-V written to {output_dir}")


if __name__ == "__main__":
    run_script(lambda: main(*ScriptArgumentParser((TinyModelArguments,), description=__doc__).parse()))
