"""Write small offline stand-ins for four of the model cards' benchmarks, in the on-disk layout of the Hub datasets
lmms-eval 0.7.3 reads (`lmms-lab-encoder/POPE`, `ChartQA`, `textvqa`, `ai2d`), drawn with Pillow.

Run as:

    python scripts/make_benchmark_fixtures.py --output_dir data/benchmarks

then point lmms-eval's own tasks at them with `scripts/forgetting.py --data_dir data/benchmarks`. Every answer can
be read from the picture (`phi3v/fixtures/card_benchmarks.py`); the default 12 rows per benchmark take a second.
"""

from dataclasses import dataclass, field

from phi3v.arguments import OutputArguments, ScriptArgumentParser, check_flag
from phi3v.checks import positive_int
from phi3v.errors import run_script
from phi3v.fixtures.card_benchmarks import DEFAULT_ROWS, make_benchmark_fixtures


@dataclass
class FixtureArguments:
    """The size and seed of the fixtures."""

    rows: int = field(default=DEFAULT_ROWS, metadata={"help": "Rows per benchmark (default: %(default)s)."})
    seed: int = field(default=0, metadata={"help": "Seed of every drawing (default: %(default)s)."})

    def __post_init__(self):
        check_flag("rows", self.rows, positive_int)


def main(output_args: OutputArguments, args: FixtureArguments) -> None:
    output_dir = make_benchmark_fixtures(output_args.output_dir, args.rows, args.seed, output_args.overwrite)
    print(f"Saved {args.rows} rows of each benchmark to {output_dir}.")


if __name__ == "__main__":
    run_script(lambda: main(*ScriptArgumentParser((OutputArguments, FixtureArguments), description=__doc__).parse()))
