"""The evaluation set of a published task as conversations (first turn, Cookbook prompt, images byte for byte), its
scores with the task's metric, and the before/after/published comparison."""

import datasets
import pytest

from phi3v.fixtures.reproduction import make_reproduction_fixtures
from phi3v.tasks import PUBLISHED, TASKS
from phi3v.tasks.reproduction import Reproduction, eval_conversations, render_report, score_predictions


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    path = tmp_path_factory.mktemp("reproduction") / "fixtures"
    rows = {"docvqa_train": 2, "docvqa_test": 4, "cauldron_docvqa": 2, "hateful_memes": 4, "nlvr2": 4}
    make_reproduction_fixtures(path, num_rows=rows)
    return path


def test_docvqa_eval_set(fixtures):
    rows = datasets.load_from_disk(str(fixtures / "docvqa_1200_examples"))["test"]
    conversations = eval_conversations(TASKS["docvqa"], rows)
    assert conversations.features["images"].feature == datasets.Image()
    raw = rows.cast_column("image", datasets.Image(decode=False))
    encoded = conversations.cast_column("images", datasets.List(datasets.Image(decode=False)))
    for row, raw_row, conversation in zip(rows, raw, encoded, strict=True):
        assert conversation["images"][0]["bytes"] == raw_row["image"]["bytes"]  # not re-encoded
        assert conversation["messages"] == [
            {"role": "user", "content": f"<|image_1|>\n{row['query']['en']}\nAnswer briefly."},
            {"role": "assistant", "content": row["answers"][0]},
        ]
        assert conversation["references"] == row["answers"]


def test_nlvr2_eval_set_is_the_first_turn(fixtures):
    rows = datasets.load_from_disk(str(fixtures / "the_cauldron" / "nlvr2"))["train"]
    conversations = eval_conversations(TASKS["nlvr2"], rows)
    for row, conversation in zip(rows, conversations, strict=True):
        first = row["texts"][0]
        assert len(conversation["images"]) == 2
        assert conversation["messages"] == [
            {"role": "user", "content": f"<|image_1|><|image_2|>\n{first['user']}"},
            {"role": "assistant", "content": first["assistant"]},
        ]
        assert conversation["references"] == [first["assistant"]]


def test_scores_use_the_tasks_metric():
    value, scores = score_predictions(TASKS["docvqa"], ["Red.", "circl", "blue"], [["Red"], ["circle"], ["Green"]])
    assert scores == [1.0, pytest.approx(5 / 6), 0.0] and value == pytest.approx(100 * (1 + 5 / 6) / 3)
    value, scores = score_predictions(TASKS["hateful_memes"], ["Yes.", "no"], [["yes"], ["yes"]])
    assert (value, scores) == (50.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="2 predictions for 1"):
        score_predictions(TASKS["nlvr2"], ["True", "False"], [["True"]])


def test_reproduction_against_the_published_row():
    row = next(row for row in PUBLISHED if row.recipe == "cookbook/docvqa/sft-lora.yaml")
    close = Reproduction(row, before=77.0, after=79.0, model=row.model, eval_set=row.eval_set)
    assert close.difference == pytest.approx(79.0 - 82.46) and close.within_tolerance
    assert close.to_json_dict() | {"verdict": "within tolerance", "within_tolerance": True} == close.to_json_dict()
    far = Reproduction(row, before=77.0, after=75.68, model=row.model, eval_set=row.eval_set)
    assert not far.within_tolerance and far.to_json_dict()["published"] == 82.46
    assert far.to_json_dict()["verdict"] == "outside tolerance" and far.to_json_dict()["within_tolerance"] is False
    command = "python scripts/reproduce.py recipes/cookbook/docvqa/sft-lora.yaml"
    report = render_report(far, num_items=200, command=command)
    assert "| 77.00 | 75.68 | 82.46 | -6.78 | +-4 |" in report and "**outside**" in report
    assert "reported at 77.02 on this set (before training here: 77.00)" in report
    assert "**within**" in render_report(close, 200, command)


@pytest.mark.parametrize(
    "model, eval_set",
    [
        ("outputs/tiny-phi3v", "data/reproduction/docvqa_1200_examples test"),  # neither is the published one
        ("outputs/tiny-phi3v", "nielsr/docvqa_1200_examples test"),  # the published set, another model
        ("microsoft/Phi-3-vision-128k-instruct", "nielsr/docvqa_1200_examples test[:20]"),  # a part of the set
    ],
)
def test_report_and_json_agree_when_the_comparison_does_not_apply(model, eval_set):
    row = next(row for row in PUBLISHED if row.recipe == "cookbook/docvqa/sft-lora.yaml")
    close = Reproduction(row, before=77.0, after=82.0, model=model, eval_set=eval_set)
    report = render_report(close, 40, "python scripts/reproduce.py recipes/cookbook/docvqa/sft-lora.yaml")
    assert "does not apply" in report and "within" not in report
    summary = close.to_json_dict()
    assert summary["verdict"] == "not applicable" and summary["within_tolerance"] is None
