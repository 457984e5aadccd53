"""The catalogue in other layouts trains exactly as the catalogue does: the same labels, and for the conversational
layout the same tokens and pixels (a custom template through the scripts: tests/e2e/test_sft_layouts.py)."""

from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoProcessor

import phi3v  # noqa: F401
from phi3v.data.formats import row_converter
from phi3v.fixtures.catalogue_layouts import export_catalogue
from phi3v.tasks.catalogue import to_conversation
from phi3v.training import Phi3VSFTCollator


REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("layout", ["conversational", "llava"])
def test_every_layout_of_the_catalogue_gives_the_same_labels(layout, synthetic_catalogue, tiny_checkpoint, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    export_catalogue(synthetic_catalogue, tmp_path / layout, layout)
    from phi3v.data.loading import load_splits

    rows = load_splits(str(tmp_path / layout), ["train[:6]"])["train[:6]"]
    _, converter = row_converter(layout, rows.column_names, image_folder=tmp_path / layout)
    exported = Phi3VSFTCollator(processor, to_conversation=converter)(list(rows))
    catalogue = datasets.load_from_disk(str(synthetic_catalogue))["train"].select(range(6))
    reference = Phi3VSFTCollator(processor, to_conversation=to_conversation)(list(catalogue))
    # The answers are the same tokens; the conversational layout keeps the catalogue's prompt to the token, LLaVA
    # writes "<image>\n" before the question.
    for index in range(6):
        assert exported["labels"][index][exported["labels"][index] != -100].tolist() == (
            reference["labels"][index][reference["labels"][index] != -100].tolist()
        )
    if layout == "conversational":
        assert torch.equal(exported["input_ids"], reference["input_ids"])
        assert torch.equal(exported["pixel_values"], reference["pixel_values"])
