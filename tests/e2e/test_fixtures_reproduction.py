"""`scripts/make_reproduction_fixtures.py` writes the fixtures with the row counts it is given (run in this process, as
`python scripts/make_reproduction_fixtures.py` would: its flags and its files are what is checked, not a process)."""

from ..safety_helpers import output_of, run_script_here
from ..unit.test_fixtures_reproduction import SMALL, load


def test_script_writes_the_fixtures(tmp_path):
    output = tmp_path / "reproduction"
    args = [f"--{name}_rows={count}" for name, count in SMALL.items()]
    result = run_script_here("make_reproduction_fixtures.py", "--output_dir", output, *args)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert len(load(output, "the_cauldron", "hateful_memes", "train")) == SMALL["hateful_memes"]
    assert (output / "manifest.json").is_file()
