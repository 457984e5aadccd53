"""Write small offline stand-ins for the Cookbook's data in the exact Hub schemas: `nielsr/docvqa_1200_examples`
(train/test) and the_cauldron's `docvqa`, `hateful_memes` and `nlvr2` configs (train), drawn with Pillow.

Run as:

    python scripts/make_reproduction_fixtures.py --output_dir data/reproduction

then load a source with `datasets.load_from_disk`, e.g. `data/reproduction/the_cauldron/nlvr2` or
`data/reproduction/docvqa_1200_examples`. The answers (colours, shapes, a red triangle for "hateful") can be read from
the pictures (see `phi3v/fixtures/reproduction.py`). The default 400 rows take a few seconds on one CPU core.
"""

import shlex
import sys
from dataclasses import dataclass, field, make_dataclass

from phi3v.arguments import OutputArguments, ScriptArgumentParser
from phi3v.errors import run_script
from phi3v.fixtures.reproduction import DEFAULT_ROWS, make_reproduction_fixtures


@dataclass
class FixtureArguments:
    """The drawings' seed; the rows of each source are `RowArguments`."""

    seed: int = field(default=0, metadata={"help": "Seed of every drawing (default: %(default)s)."})


# `--NAME_rows` for each source of `DEFAULT_ROWS`, so a source added there gets its flag.
RowArguments = make_dataclass(
    "RowArguments",
    [
        (f"{name}_rows", int, field(default=default, metadata={"help": f"Rows of {name} (default: %(default)s)."}))
        for name, default in DEFAULT_ROWS.items()
    ],
)


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser((OutputArguments, FixtureArguments, RowArguments), description=__doc__)


def main(output_args: OutputArguments, args: FixtureArguments, rows: RowArguments) -> None:
    manifest = make_reproduction_fixtures(
        output_args.output_dir,
        seed=args.seed,
        num_rows={name: getattr(rows, f"{name}_rows") for name in DEFAULT_ROWS},
        overwrite=output_args.overwrite,
        command=shlex.join(["python", *sys.argv]),
    )
    print(f"Saved the reproduction fixtures ({manifest['rows']}) to {output_args.output_dir}.")


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
