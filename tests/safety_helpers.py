"""Helpers of the safety tests: run a script as a user does, and fingerprint a directory to prove it untouched."""

import contextlib
import hashlib
import io
import os
import runpy
import subprocess
import sys
import traceback
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parent.parent


def script_env() -> dict:
    """The environment a user's shell would give: this checkout's sources first, offline, one torch thread."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def run_script(script: str, *args, launcher: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs `python scripts/<script> args...` from the repository root; `launcher` is Python code run instead of the
    plain interpreter (it receives the script and its arguments in `sys.argv[1:]`)."""
    prefix = [sys.executable, "-c", launcher] if launcher else [sys.executable]
    command = [*prefix, f"scripts/{script}", *map(str, args)]
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, env=script_env(), timeout=timeout, check=False
    )


def run_script_here(script: str, *args) -> subprocess.CompletedProcess:
    """`run_script` in this process (`runpy`, as `python scripts/<script>` would), which spares the ~10 s of importing
    torch, transformers, TRL and PEFT again: the exit status, standard output and standard error of the script's own
    code. What only a separate process shows (a launcher's patches, a kill, the terminal) needs `run_script`.

    Args:
        script: the file name under `scripts/`.
        args: its command-line arguments (made strings).
    """
    command = [f"scripts/{script}", *map(str, args)]
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = list(command)
    os.chdir(REPO_ROOT)
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(str(REPO_ROOT / "scripts" / script), run_name="__main__")
    except SystemExit as exit_info:  # as the interpreter exits: a status, None (0) or a message (printed, status 1)
        if isinstance(exit_info.code, str):
            stderr.write(exit_info.code + "\n")
        returncode = exit_info.code if isinstance(exit_info.code, int) else int(exit_info.code is not None)
    except Exception:  # noqa: BLE001  (any uncaught error: the interpreter prints its traceback, exits with status 1)
        stderr.write(traceback.format_exc())
        returncode = 1
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return subprocess.CompletedProcess(command, returncode, stdout.getvalue(), stderr.getvalue())


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def tree_digest(path: Path) -> str:
    """A digest of every file's relative path and bytes under `path` (or of the file itself)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        digest.update(file.read_bytes())
    if path.is_dir():
        digest.update("\n".join(sorted(str(p.relative_to(path)) for p in path.rglob("*"))).encode())
    return digest.hexdigest()
