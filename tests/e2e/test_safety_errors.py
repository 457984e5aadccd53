"""What a user's terminal shows, from a subprocess: one `error:` line and exit status 2. `PHI3V_DEBUG=1` shows the
traceback instead (the same run in this process: what the interpreter prints of the error `run_script` re-raises)."""

from ..safety_helpers import output_of, run_script_here
from ..safety_helpers import run_script as run_subprocess


def test_the_terminal_shows_one_line_and_phi3v_debug_shows_the_traceback(tmp_path, monkeypatch):
    args = ["recipes/smoke/sft-full.yaml", "--task", "hateful-memes", "--output_dir", tmp_path / "out"]
    monkeypatch.delenv("PHI3V_DEBUG", raising=False)
    plain = run_subprocess("sft.py", *args)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines()[-1].startswith("error: task 'hateful-memes' is not one of [")
    assert "Traceback" not in output_of(plain)
    debug = run_script_here("sft.py", *args, env={"PHI3V_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "UsageError: task 'hateful-memes' is not one of [" in debug.stderr
