"""Shared fixtures: a tiny random Phi-3-V checkpoint in the Hub layout, and the real Hub files from ../shared."""

import os
from pathlib import Path

import pytest


os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_FILES = REPO_ROOT.parent / "shared" / "hub_files"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random Phi-3-V written by the same code as `scripts/make_tiny_model.py`."""
    from phi3v.fixtures.tiny_model import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-phi3v")


@pytest.fixture(scope="session")
def synthetic_catalogue(tmp_path_factory) -> Path:
    """A small synthetic catalogue (72 products), written as `make demo` writes its 360."""
    from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue

    path = tmp_path_factory.mktemp("catalogue") / "synthetic"
    make_synthetic_catalogue(path, num_products=72, seed=0)
    return path


def hub_files(name: str) -> Path:
    """The real Hub files of an official checkpoint (configs, tokenizer, tensor index; no weights), or a skip."""
    path = HUB_FILES / name
    if not (path / "config.json").exists():
        pytest.skip(f"{path} is absent: the real Hub files live in ../shared/hub_files beside the checkout")
    return path


@pytest.fixture(params=["Phi-3-vision-128k-instruct", "Phi-3.5-vision-instruct"])
def official_files(request) -> Path:
    return hub_files(request.param)
