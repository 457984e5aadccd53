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

import shlex
import sys
import tempfile
from dataclasses import dataclass, field

from phi3v.arguments import OutputArguments, ScriptArgumentParser, check_flag
from phi3v.checks import positive_int
from phi3v.errors import run_script
from phi3v.fixtures.catalogue_layouts import LAYOUTS, export_catalogue
from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue
from phi3v.preparation.storage import check_output_dir


@dataclass
class CatalogueArguments:
    """How many products, their split and the layout they are saved in."""

    num_products: int = field(default=360, metadata={"help": "Number of products (default: %(default)s)."})
    seed: int = field(default=0, metadata={"help": "Seed of the products and the split (default: %(default)s)."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of products for validation (default: %(default)s)."}
    )
    test_fraction: float = field(default=0.1, metadata={"help": "Share of products for test (default: %(default)s)."})
    layout: str = field(
        default="catalogue",
        metadata={
            "help": "catalogue (the prepared-catalogue format), conversational (TRL images + messages) or llava "
            "(JSON).",
            "choices": ["catalogue", *LAYOUTS],
        },
    )

    def __post_init__(self):
        check_flag("num_products", self.num_products, positive_int)


def make_parser() -> ScriptArgumentParser:
    return ScriptArgumentParser((CatalogueArguments, OutputArguments), description=__doc__)


def main(args: CatalogueArguments, output_args: OutputArguments) -> None:
    check_output_dir(output_args.output_dir, output_args.overwrite)
    if args.layout != "catalogue":
        with tempfile.TemporaryDirectory() as scratch:
            make_synthetic_catalogue(
                f"{scratch}/catalogue", args.num_products, args.seed, args.validation_fraction, args.test_fraction
            )
            export_catalogue(f"{scratch}/catalogue", output_args.output_dir, args.layout)
        print(f"Saved {args.num_products} synthetic products in the {args.layout} layout to {output_args.output_dir}.")
        return
    manifest = make_synthetic_catalogue(
        output_args.output_dir,
        num_products=args.num_products,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        overwrite=output_args.overwrite,
        command=shlex.join(["python", *sys.argv]),
    )
    print(f"Saved {manifest['rows_kept']} synthetic products to {output_args.output_dir}.")
    for warning in manifest["warnings"]:
        print(f"WARNING: {output_args.output_dir}: {warning}", file=sys.stderr)


if __name__ == "__main__":
    run_script(lambda: main(*make_parser().parse()))
