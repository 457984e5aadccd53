"""Several scripts, one after another, in each process one `accelerate launch` starts:

    accelerate launch --config_file CONFIG tests/run_in_sequence.py scripts/sft.py ARGS --then scripts/dpo.py ARGS

Each runs as `python SCRIPT ARGS` would run it in that process (`safety_helpers.run_script_here`: `runpy`, its
environment restored after it, its process group and accelerate's and DeepSpeed's state of it ended as its process's
exit would end them), with the environment the launch gave the process. Every launched process imports torch,
transformers and TRL once (about 14 CPU-seconds on this machine's cores) instead of once per script. The first script
runs exactly as launched; the sequence stops at the first that fails (status 1, naming it).
"""

import sys
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parent.parent
SEPARATOR = "--then"


def commands(argv: list[str]) -> list[list[str]]:
    """The scripts and their arguments, split at `--then`."""
    runs = [[]]
    for argument in argv:
        if argument == SEPARATOR:
            runs.append([])
        else:
            runs[-1].append(argument)
    return runs


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))  # `tests` as a package, as pytest imports it
    from tests.safety_helpers import run_script_here

    for script, *args in commands(sys.argv[1:]):
        result = run_script_here(script, *args, capture=False)
        if result.returncode != 0:
            sys.exit(f"run_in_sequence.py: {script} exited with status {result.returncode}")
