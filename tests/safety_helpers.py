"""Helpers of the safety tests: run a script as a user does, and fingerprint a directory to prove it untouched."""

import hashlib
import os
import subprocess
import sys
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
