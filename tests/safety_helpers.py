"""Helpers of the safety tests: run a script as a user does, and fingerprint a directory to prove it untouched."""

import contextlib
import hashlib
import io
import itertools
import logging
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


def run_script_here(script: str, *args, env: dict | None = None, capture: bool = True) -> subprocess.CompletedProcess:
    """`run_script` in this process (`runpy`, as `python scripts/<script>` would), which spares the ~14 s of importing
    torch, transformers, TRL and PEFT again: the exit status, standard output and standard error of the script's own
    code. What only a separate process shows (a launcher's patches, a kill, the terminal) needs `run_script`.

    Standard error holds what the script's process would print there: its writes, and its log records, which a fresh
    interpreter prints through `logging.basicConfig`'s handler (or logging's last resort) and the libraries' own
    handlers (transformers, datasets), all bound to the real stderr. Here pytest's handlers hold the root logger, so
    `basicConfig` adds none, and the libraries' handlers were bound when first used: a handler on the root logger and
    the libraries' handlers point at the captured stderr while the script runs. Records of a level the script's own
    process would not print may show too; a check that a message is absent only gets stricter.

    `os.environ` is restored afterwards: a script may set variables (TrainingArguments sets `ACCELERATE_*` ones) that
    its process would take with it, and that must not reach the next script run in this process. A W&B run the script
    started is finished, and the distributed state of a launched run (its process group, accelerate's and DeepSpeed's
    state of it) torn down, as at its process's exit.

    Args:
        script: the file name under `scripts/`, or a path from the repository root (`benchmarks/...`).
        args: its command-line arguments (made strings).
        env: variables set while it runs, as a launcher or the user's shell would set them.
        capture (`bool`, defaults to `True`): hold its standard output and error in the result; `False` leaves them
            on this process's own (the result's are then empty), as in a launched process (`tests/run_in_sequence.py`).
    """
    command = [script if "/" in script else f"scripts/{script}", *map(str, args)]
    argv, cwd, environ = sys.argv, os.getcwd(), dict(os.environ)
    sys.argv = list(command)
    os.environ.update({name: str(value) for name, value in (env or {}).items()})
    os.chdir(REPO_ROOT)
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode = 0
    try:
        with _captured(stdout, stderr) if capture else contextlib.nullcontext():
            try:
                runpy.run_path(str(REPO_ROOT / command[0]), run_name="__main__")
            finally:
                _finish_wandb_run()
                _end_distributed_state()
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
        os.environ.clear()
        os.environ.update(environ)
    return subprocess.CompletedProcess(command, returncode, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def _captured(stdout: io.StringIO, stderr: io.StringIO):
    """Standard output, standard error and log records into `stdout` and `stderr`."""
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), _log_records_to(stderr):
        yield


def _finish_wandb_run() -> None:
    """Finishes the W&B run the script started (`report_to: wandb`) and tears W&B's process state down, as its
    process's exit would (W&B's exit hook): otherwise it stays the current run of this process, the next script's run
    would log into it, and W&B's settings (`WANDB_DIR`, `WANDB_MODE`) read once per process would outlive the script."""
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()


_GROUP_COUNTS = itertools.count(1000, 1000)  # far above any count a script reaches with its own groups


def _end_distributed_state() -> None:
    """Ends what a run under a launcher's environment set up for its process and its process's exit ends: the process
    group, DeepSpeed's references to its groups, accelerate's shared state, and transformers' reference to the
    DeepSpeed config (which would make the next model load a ZeRO-3 one)."""
    import torch.distributed
    from accelerate.state import AcceleratorState

    if torch.distributed.is_initialized():  # the trainer's `end_training` may have destroyed it already
        torch.distributed.destroy_process_group()
    # The next group of this process keys its rendezvous by a number unused so far. Destroying a group resets the
    # count, so the next would take the keys of this one, and where the store outlives the group (torchrun's agent
    # serves it to a launched process for all its life: `tests/run_in_sequence.py`) its ranks would read this group's
    # dead addresses.
    torch.distributed.distributed_c10d._world.group_count = next(_GROUP_COUNTS)
    deepspeed_groups = sys.modules.get("deepspeed.utils.groups")
    if deepspeed_groups is not None:  # what `deepspeed.comm.destroy_process_group` does after torch's
        deepspeed_groups._release_process_group_references()
    AcceleratorState._reset_state(reset_partial_state=True)
    deepspeed_integration = sys.modules.get("transformers.integrations.deepspeed")
    if deepspeed_integration is not None:
        deepspeed_integration.unset_hf_deepspeed_config()


@contextlib.contextmanager
def _log_records_to(stream: io.StringIO):
    """Log records go to `stream` as well, where a fresh interpreter running the script would print them."""
    import datasets
    import transformers

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))  # logging.basicConfig's default
    root = logging.getLogger()
    root.addHandler(handler)
    # Configured now if not yet, so that a first use inside the script does not bind transformers' handler to `stream`.
    transformers.utils.logging._configure_library_root_logger()
    library_handlers = [
        library_handler
        for module in (transformers.utils.logging, datasets.utils.logging)
        for library_handler in module._get_library_root_logger().handlers
        if isinstance(library_handler, logging.StreamHandler)
    ]
    streams = [library_handler.setStream(stream) for library_handler in library_handlers]
    try:
        yield
    finally:
        root.removeHandler(handler)
        for library_handler, old_stream in zip(library_handlers, streams, strict=True):
            library_handler.setStream(old_stream)


@contextlib.contextmanager
def steps_in_this_process():
    """While active, a script's step that runs another script as `subprocess.run([sys.executable, "scripts/X.py",
    args...])` (as scripts/reproduce.py runs sft.py and evaluate.py) runs it in this process through `run_script_here`:
    the same command, its exit status returned, what it printed passed on to this process's output as a child's
    would be. Any other command runs as a process.
    """
    real_run = subprocess.run

    def run(command, *args, **kwargs):
        script = Path(command[1]) if len(command) > 1 and command[0] == sys.executable else None
        if script is None or script.parent != REPO_ROOT / "scripts" or args or set(kwargs) - {"check"}:
            return real_run(command, *args, **kwargs)
        result = run_script_here(script.name, *command[2:])
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if kwargs.get("check") and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, command)
        return subprocess.CompletedProcess(command, result.returncode)

    subprocess.run = run
    try:
        yield
    finally:
        subprocess.run = real_run


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
