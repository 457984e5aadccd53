"""The W&B predictions table: with the run's validation by generation it shows the answers validation generated at
this evaluation (nothing is generated twice), and its exact match is the project's one (after normalising)."""

import sys
import types

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from phi3v.training import GenerationValidation, PredictionsTableCallback


ITEMS = [
    {"images": [], "prompt": [{"role": "user", "content": "Colour?"}], "references": ["Red."]},
    {"images": [], "prompt": [{"role": "user", "content": "Shape?"}], "references": ["circle"]},
    {"images": [], "prompt": [{"role": "user", "content": "Size?"}], "references": ["small"]},
]


class FakeWandb(types.ModuleType):
    """Records `wandb.log` calls; `Table` keeps its rows."""

    def __init__(self):
        super().__init__("wandb")
        self.logged = []

        class Table:
            def __init__(self, columns):
                self.columns, self.rows = columns, []

            def add_data(self, *row):
                self.rows.append(row)

        self.Table = Table

    def log(self, metrics):
        self.logged.append(metrics)


class NoGenerationModel:
    def generate(self, *args, **kwargs):
        raise AssertionError("the table generated again")


@pytest.fixture
def fake_wandb(monkeypatch):
    module = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_table_shows_the_validation_answers_without_generating(fake_wandb, tmp_path):
    validation = GenerationValidation(processor=None, items=ITEMS)
    validation.answers = ["red", "Square", "small."]  # what validation generated at this evaluation
    callback = PredictionsTableCallback(None, ITEMS[:2], validation=validation)
    state = TrainerState()
    callback.on_evaluate(
        TrainingArguments(output_dir=str(tmp_path)), state, TrainerControl(), model=NoGenerationModel()
    )
    (metrics,) = fake_wandb.logged
    assert [row[1:] for row in metrics["eval/predictions"].rows] == [("Red.", "red"), ("circle", "Square")]
    # "red" matches "Red." after normalising (case, trailing dot), as in evaluation and DPO validation
    assert metrics["eval/predictions_exact_match"] == 0.5


def test_table_items_must_be_the_first_validation_items():
    validation = GenerationValidation(processor=None, items=ITEMS)
    with pytest.raises(ValueError, match="first items"):
        PredictionsTableCallback(None, ITEMS[1:], validation=validation)
