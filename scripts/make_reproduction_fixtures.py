"""Write small offline stand-ins for the Cookbook's data in the exact Hub schemas: `nielsr/docvqa_1200_examples`
(train/test) and the_cauldron's `docvqa`, `hateful_memes` and `nlvr2` configs (train), drawn with Pillow.

Run as:

    python scripts/make_reproduction_fixtures.py --output_dir data/reproduction

then load a source with `datasets.load_from_disk`, e.g. `data/reproduction/the_cauldron/nlvr2` or
`data/reproduction/docvqa_1200_examples`. The answers (colours, shapes, a red triangle for "hateful") can be read from
the pictures (see `phi3v/fixtures/reproduction.py`). The default 400 rows take a few seconds on one CPU core.
"""

import argparse
import shlex
import sys

from phi3v.errors import run_script, usage_errors
from phi3v.fixtures.reproduction import DEFAULT_ROWS, make_reproduction_fixtures


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", "--output", required=True, help="Directory to write the fixtures in.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every drawing (default: %(default)s).")
    for name, default in DEFAULT_ROWS.items():
        parser.add_argument(
            f"--{name}_rows", type=int, default=default, help=f"Rows of {name} (default: %(default)s)."
        )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace --output_dir if it holds fixtures written by this script."
    )
    return parser


def main(args: argparse.Namespace) -> None:
    manifest = make_reproduction_fixtures(
        args.output_dir,
        seed=args.seed,
        num_rows={name: getattr(args, f"{name}_rows") for name in DEFAULT_ROWS},
        overwrite=args.overwrite,
        command=shlex.join(["python", *sys.argv]),
    )
    print(f"Saved the reproduction fixtures ({manifest['rows']}) to {args.output_dir}.")


if __name__ == "__main__":
    parser = make_parser()
    run_script(lambda: main(usage_errors(parser).parse_args()))
