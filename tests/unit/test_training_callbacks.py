"""The W&B predictions table: with the run's validation by generation it shows the answers validation generated at
this evaluation (nothing is generated twice), and its metrics are the task's (the evaluation report's definitions)."""

import sys
import types

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from phi3v.tasks import build_task
from phi3v.tasks.config import TaskConfig
from phi3v.training import GenerationValidation, PredictionsTableCallback, generation_validation


CONVERSATION = build_task(TaskConfig())


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


def evaluate(callback, tmp_path, step=0, model=None):
    state = TrainerState(global_step=step)
    callback.on_evaluate(TrainingArguments(output_dir=str(tmp_path)), state, TrainerControl(), model=model)


def test_table_shows_the_validation_answers_without_generating(fake_wandb, tmp_path):
    validation = GenerationValidation(None, CONVERSATION, ITEMS)
    validation.answers, validation.answered_step = ["red", "Square", "small."], 7  # validation's, at this evaluation
    evaluate(PredictionsTableCallback(validation, num_rows=2), tmp_path, step=7, model=NoGenerationModel())
    (metrics,) = fake_wandb.logged
    assert [row[1:] for row in metrics["eval/predictions"].rows] == [("Red.", "red"), ("circle", "Square")]
    # "red" matches "Red." after normalising (case, trailing dot), as in evaluation and DPO validation
    assert metrics["eval/predictions_exact_match"] == 0.5


def test_table_generates_when_validation_has_not_at_this_step(fake_wandb, monkeypatch, tmp_path):
    calls = []

    def answer_items(model, processor, items, batch_size, max_new_tokens):
        calls.append(len(items))
        return ["Red", "circle", "big"]

    monkeypatch.setattr(generation_validation, "answer_items", answer_items)
    validation = GenerationValidation(None, CONVERSATION, ITEMS)
    validation.answers, validation.answered_step = ["x", "y", "z"], 3  # an earlier evaluation's
    callback = PredictionsTableCallback(validation)
    evaluate(callback, tmp_path, step=8)
    evaluate(callback, tmp_path, step=8)  # a second log at the same step reuses the answers
    assert calls == [3] and fake_wandb.logged[0]["eval/predictions_exact_match"] == 2 / 3


def test_catalogue_table_has_price_errors_and_the_evaluation_metrics(fake_wandb, tmp_path):
    task = build_task(TaskConfig(task="catalogue"))
    truth = {"title": "Red Tote", "category3_code": "BAGS", "full_price": 200.0}
    items = [
        {"images": [], "prompt": [], "references": [task.template.render(truth)], "truth": truth},
        {"images": [], "prompt": [], "references": [task.template.render(truth)]},  # truth read from the reference
    ]
    validation = GenerationValidation(None, task, items)
    validation.answers = ["Product: Red Tote, Category: BAGS, Full Price: 150.00", "I do not know"]
    validation.answered_step = 0
    evaluate(PredictionsTableCallback(validation), tmp_path)
    (metrics,) = fake_wandb.logged
    assert metrics["eval/predictions"].columns == ["image", "reference", "prediction", "price_error"]
    assert [row[3] for row in metrics["eval/predictions"].rows] == [50.0, None]
    # The evaluation's definitions: a missing price counts as $0 in the MAE, the parse rate counts complete answers.
    assert metrics["eval/predictions_price_mae"] == (50.0 + 200.0) / 2
    assert metrics["eval/predictions_parse_rate"] == 0.5 and metrics["eval/predictions_category_accuracy"] == 0.5
    assert metrics == {
        **metrics,
        **{
            f"eval/predictions_{k}": v
            for k, v in task.metrics(items, validation.answers).items()
            if k != "num_samples"
        },
    }


def test_published_task_table_scores_with_the_cookbook_metric(fake_wandb, tmp_path):
    task = build_task(TaskConfig(task="docvqa"))
    items = [{"images": [], "prompt": [], "references": ["1985", "1986"]}]
    validation = GenerationValidation(None, task, items)
    validation.answers, validation.answered_step = ["1986."], 0
    evaluate(PredictionsTableCallback(validation), tmp_path)
    (metrics,) = fake_wandb.logged
    assert metrics["eval/predictions_anls"] == 1.0 and metrics["eval/predictions_exact_match"] == 1.0
