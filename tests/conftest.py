"""Shared fixtures: a tiny random Phi-3-V checkpoint in the Hub layout, a small synthetic catalogue (both built once per
test run, shared by the pytest-xdist workers), and the real Hub files from ../shared.

Tests are in two folders: `tests/unit` calls the code in this process (`make test-fast`); `tests/e2e` runs scripts end
to end as a user does (training, launchers, a browser): in this process (`safety_helpers.run_script_here`) where the
test is not about a process, in processes of their own where it is (a launcher, a kill, the terminal, two ranks, the
app server). `make test` runs both, one worker per core.
"""

import gc
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


# One torch (OpenMP) thread in every test process and every process a test starts (they inherit this environment);
# set before torch is imported. Workers run one per core, and OpenMP's default of one thread per core in each
# process oversubscribes the cores as soon as two processes run: its spinning threads made a tiny-model training
# step about 20 times slower. Tiny models gain nothing from more threads.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_FILES = REPO_ROOT.parent / "shared" / "hub_files"


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder `name` that `build(path)` writes, built by the first process of the test run that asks for it.

    Args:
        tmp_path_factory: pytest's factory; under pytest-xdist each worker's base folder sits in one shared by the run.
        name: the folder's name.
        build: writes the folder at the path it is given.
    """
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the run's folder, above the workers' own
    path, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            build(path)
            done.touch()  # after the build: a build that failed is not taken for a finished one
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random Phi-3-V written by the same code as `scripts/make_tiny_model.py`."""
    from phi3v.fixtures.tiny_model import make_tiny_checkpoint

    return built_once(tmp_path_factory, "tiny-phi3v", make_tiny_checkpoint)


@pytest.fixture(scope="session")
def synthetic_catalogue(tmp_path_factory) -> Path:
    """A small synthetic catalogue (72 products), written as `make demo` writes its 360."""
    from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue

    return built_once(
        tmp_path_factory, "synthetic", lambda path: make_synthetic_catalogue(path, num_products=72, seed=0)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Orders the run for `make test`'s two pytest-xdist workers. `--dist worksteal` gives the first worker the first
    half of this order and the second the rest, then moves tests from the end of a busy worker's queue to an idle one.
    The tests that start several processes (`several_processes`: two ranks and a launcher, both cores busy) come first,
    for one worker to run one at a time; the other end-to-end tests start the second half; the short unit tests fill
    both halves' ends, the tests that move. Only the order changes: every test runs.
    """
    launches = [item for item in items if item.get_closest_marker("several_processes")]
    end_to_end = [item for item in items if "e2e" in item.path.parts and item not in launches]
    unit = [item for item in items if "e2e" not in item.path.parts]
    first_half_units = max(0, len(items) // 2 - len(launches))
    items[:] = launches + unit[:first_half_units] + end_to_end + unit[first_half_units:]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Moves what collection made (torch, transformers, TRL and the test modules: ~570,000 objects) out of the garbage
    collector's sight (`gc.freeze`), once the modules are imported: they live as long as the process, yet every full
    collection walked them all, ~0.6 s a time, about a tenth of each training run here (accelerate's `free_memory`
    collects after training). What the tests make is collected as before."""
    gc.freeze()


def hub_files(name: str) -> Path:
    """The real Hub files of an official checkpoint (configs, tokenizer, tensor index; no weights), or a skip."""
    path = HUB_FILES / name
    if not (path / "config.json").exists():
        pytest.skip(f"{path} is absent: the real Hub files live in ../shared/hub_files beside the checkout")
    return path


@pytest.fixture(params=["Phi-3-vision-128k-instruct", "Phi-3.5-vision-instruct"])
def official_files(request) -> Path:
    return hub_files(request.param)
