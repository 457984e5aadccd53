"""The runnable commands of the documentation run, in-process, as `tests/unit/test_readme.py` describes: each document's
commands in order in one fresh working directory, on stand-ins for what no earlier command wrote."""

import runpy
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from ..evaluation_helpers import REPO_ROOT, make_lora_adapter, one_torch_thread
from ..unit.test_readme import (
    IMAGE_SUFFIXES,
    INPUTS,
    OUTPUT_FLAGS,
    POSITIONAL,
    SCALE_DOWN,
    Command,
    flag_values,
    positional_args,
    runs_by_document,
)


@pytest.fixture(scope="module")
def stand_ins(tiny_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """The sources of the stand-ins: the tiny checkpoint, a LoRA adapter over it, a small synthetic catalogue."""
    from phi3v.fixtures.synthetic_catalogue import make_synthetic_catalogue

    folder = tmp_path_factory.mktemp("stand-ins")
    with one_torch_thread():
        adapter = make_lora_adapter(tiny_checkpoint, folder / "adapter")
    make_synthetic_catalogue(folder / "catalogue", num_products=60, seed=0)
    return {"checkpoint": tiny_checkpoint, "model": adapter, "catalogue": folder / "catalogue"}


def provide(kind: str, path: Path, stand_ins: dict[str, Path]) -> None:
    """Puts a stand-in of `kind` at `path` unless something is there already (an earlier command's output)."""
    if path.exists():
        return
    if kind == "images":
        photos = {path / "bag.jpg": (120, 90), path / "scarf.png": (80, 160)}
        if path.suffix.lower() in IMAGE_SUFFIXES:
            photos = {path: (120, 90)}
        for photo, size in photos.items():
            photo.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (200, 30, 30) if photo.suffix == ".jpg" else (20, 90, 160)).save(photo)
    else:
        shutil.copytree(stand_ins[kind], path)


def run_command(command: Command, workspace: Path, stand_ins, monkeypatch, capsys) -> None:
    script, args = command.script, command.script_args
    for flag, kind in INPUTS.get(script, {}).items():
        values = positional_args(args) if flag == POSITIONAL else flag_values(args, flag, script)
        for value in values:
            path = Path(value.split("=", 1)[-1] if "=" in value and flag == "--model" else value)
            assert not path.is_absolute(), f"{command}: a runnable command should use relative paths ({path})"
            provide(kind, workspace / path, stand_ins)
    outputs = [Path(value) for flag in OUTPUT_FLAGS for value in flag_values(args, flag)]
    assert not any(path.is_absolute() for path in outputs), f"{command}: writes outside the working directory"
    for name, value in command.env:
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", [script, *args, *SCALE_DOWN.get(script, [])])
    try:
        runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), f"{command} exited with {exit_info.code}:\n{capsys.readouterr().err}"
    for path in outputs:
        assert (workspace / path).exists(), f"{command} did not write {path}"


RUNS = runs_by_document()


@pytest.mark.parametrize("document", sorted(RUNS))
def test_documented_commands_run(document, stand_ins, tmp_path, monkeypatch, capsys):
    """The document's runnable commands, in order, in one fresh working directory: a later command reads what an
    earlier one wrote (the real pipeline), or a stand-in."""
    monkeypatch.chdir(tmp_path)
    with one_torch_thread():
        for command in RUNS[document]:
            run_command(command, tmp_path, stand_ins, monkeypatch, capsys)
