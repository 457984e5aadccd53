"""Generate the synthetic product catalogue (products drawn with Pillow) used by the demo and the tests.

Run as:

    python scripts/make_synthetic_catalogue.py --output_dir data/synthetic

then load it with `datasets.load_from_disk("data/synthetic")`: `train`, `validation` and `test` splits with the same
columns as a prepared real catalogue, plus `manifest.json`. Category, title and price can all be read from the
pictures (see `phi3v/fixtures/synthetic_catalogue.py`). 360 products take a few seconds on one CPU core.

The same products in the other layouts training reads (`phi3v/fixtures/catalogue_layouts.py`), to try them end to end:

    python scripts/make_synthetic_catalogue.py --output_dir data/synthetic-conversational --layout conversational
    python scripts/make_synthetic_catalogue.py --output_dir data/synthetic-llava --layout llava
"""

import argparse
import shlex
import sys
import tempfile

from phi3v.checks import positive_int
from phi3v.errors import run_script, usage_errors
from phi3v.fixtures.catalogue_layouts import LAYOUTS, export_catalogue
from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue
from phi3v.preparation.storage import check_output_dir


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", "--output", required=True, help="Directory to save the catalogue in.")
    parser.add_argument(
        "--num_products", type=positive_int, default=360, help="Number of products (default: %(default)s)."
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of the products and the split (default: %(default)s)."
    )
    parser.add_argument(
        "--validation_fraction",
        type=float,
        default=0.1,
        help="Share of products for validation (default: %(default)s).",
    )
    parser.add_argument(
        "--test_fraction", type=float, default=0.1, help="Share of products for test (default: %(default)s)."
    )
    parser.add_argument(
        "--layout",
        default="catalogue",
        choices=["catalogue", *LAYOUTS],
        help="catalogue (the prepared-catalogue format), conversational (TRL images + messages) or llava (JSON).",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace --output_dir if it holds a previously generated catalogue."
    )
    return parser


def main(args: argparse.Namespace) -> None:
    check_output_dir(args.output_dir, args.overwrite)
    if args.layout != "catalogue":
        with tempfile.TemporaryDirectory() as scratch:
            make_synthetic_catalogue(
                f"{scratch}/catalogue", args.num_products, args.seed, args.validation_fraction, args.test_fraction
            )
            export_catalogue(f"{scratch}/catalogue", args.output_dir, args.layout)
        print(f"Saved {args.num_products} synthetic products in the {args.layout} layout to {args.output_dir}.")
        return
    manifest = make_synthetic_catalogue(
        args.output_dir,
        num_products=args.num_products,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        overwrite=args.overwrite,
        command=shlex.join(["python", *sys.argv]),
    )
    print(f"Saved {manifest['rows_kept']} synthetic products to {args.output_dir}.")
    for warning in manifest["warnings"]:
        print(f"WARNING: {args.output_dir}: {warning}", file=sys.stderr)


if __name__ == "__main__":
    parser = make_parser()
    run_script(lambda: main(usage_errors(parser).parse_args()))
