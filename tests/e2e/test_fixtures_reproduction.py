"""`scripts/make_reproduction_fixtures.py` writes the fixtures with the row counts it is given."""

import subprocess
import sys
from pathlib import Path

from ..unit.test_fixtures_reproduction import SMALL, load


REPO_ROOT = Path(__file__).resolve().parents[2]


def test_script_writes_the_fixtures(tmp_path):
    output = tmp_path / "reproduction"
    args = [f"--{name}_rows={count}" for name, count in SMALL.items()]
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "make_reproduction_fixtures.py"),
            "--output_dir",
            str(output),
            *args,
        ],
        check=True,
        capture_output=True,
    )
    assert len(load(output, "the_cauldron", "hateful_memes", "train")) == SMALL["hateful_memes"]
    assert (output / "manifest.json").is_file()
