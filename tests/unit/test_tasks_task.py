"""The `Task` of each kind: built once from a task config, it asks rows of any layout, reads and scores answers with
one definition per metric, and gives the reward of an answer."""

import math

import pytest

from phi3v.tasks import CatalogueTask, PublishedTask, Task, build_task, load_task
from phi3v.tasks.config import TaskConfig


ROW = {"product_code": "7", "image": None, "title": "Red Tote", "category3_code": "BAGS", "full_price": 200.0}
ANSWER = "Product: Red Tote, Category: BAGS, Full Price: 200.00"


def test_the_config_names_the_kind_and_a_saved_config_builds_the_same_task(tmp_path):
    assert type(build_task(TaskConfig())) is Task
    assert isinstance(build_task(TaskConfig(task="catalogue")), CatalogueTask)
    assert isinstance(build_task(TaskConfig(task="hateful_memes")), PublishedTask)
    config = TaskConfig("catalogue", "catalogue", "Price?", "{title} costs ${full_price}")
    config.save(tmp_path)
    task = load_task(tmp_path)
    assert task.config == config and task.answer_fields == ("title", "full_price") and task.question == "Price?"
    assert load_task(tmp_path / "missing") is None


def test_catalogue_rows_make_the_conversation_task_the_catalogue():
    assert TaskConfig().for_layout("catalogue").task == "catalogue"
    assert TaskConfig(task="docvqa").for_layout("catalogue").task == "docvqa"  # a named task stays
    assert TaskConfig().for_layout("llava") == TaskConfig(dataset_format="llava")


def test_catalogue_items_carry_their_truth_and_other_layouts_read_it_from_the_reference():
    task = build_task(TaskConfig(task="catalogue"))
    (item,) = task.eval_items([ROW], "catalogue", None)
    assert item["id"] == "7" and item["references"] == [ANSWER] and item["truth"]["full_price"] == 200.0
    assert item["prompt"] == [{"role": "user", "content": "What is shown in this image?"}]  # no image: no tag
    conversation = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ANSWER}]}
    (exported,) = task.eval_items([conversation], "conversational", None)
    assert "truth" not in exported and task.truth(exported) == task.parse(ANSWER)
    wrong = "Product: Red Tote, Category: SHOES, Full Price: 100.00"
    assert task.metrics([item], [wrong]) == task.metrics([exported], [wrong])
    assert task.metrics([item], [wrong])["price_mape"] == 0.5


def test_preference_pairs_are_asked_their_prompt_with_the_chosen_answer_as_reference():
    pair = {
        "product_code": "9",
        "images": [],
        "prompt": [{"role": "user", "content": "Q"}],
        "chosen": [{"role": "assistant", "content": ANSWER}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }
    for task in (build_task(TaskConfig()), build_task(TaskConfig(task="catalogue"))):
        (item,) = task.eval_items([pair], "preference", None)
        assert item["id"] == "9" and item["references"] == [ANSWER] and item["prompt"] == pair["prompt"]


def test_published_tasks_score_with_the_cookbook_metric_first():
    task = build_task(TaskConfig(task="docvqa"))
    item = {"references": ["1985", "1986"]}
    scores = task.item_scores("1986.", item)
    assert list(scores) == ["anls", "exact_match", "edit_similarity"] and scores["anls"] == 1.0
    assert task.rewards("1986.", item) == {"anls": 1.0}
    assert build_task(TaskConfig(task="nlvr2")).rewards("True.", {"references": ["true"]}) == {
        "cookbook_accuracy": 1.0
    }
    # the_cauldron's DocVQA (its training layout) is asked its last assistant turn, as any conversation.
    row = {
        "images": [],
        "texts": [{"user": "Year?", "assistant": "1985", "source": "docvqa"}],
    }
    (item,) = task.eval_items([row], "the_cauldron", task.row_converter(["images", "texts"], "x")[1])
    assert item["references"] == ["1985"]


def test_rewards_of_a_catalogue_answer_per_field():
    task = build_task(TaskConfig(task="catalogue"))
    (item,) = task.eval_items([ROW], "catalogue", None)
    assert task.rewards(ANSWER, item) == {"format": 1.0, "title": 1.0, "category": 1.0, "price": 1.0}
    half = task.rewards("Product: Red Tot, Category: SHOES, Full Price: 100.00", item)
    assert half["category"] == 0.0 and half["price"] == pytest.approx(0.0)  # a factor of 2 off earns nothing
    assert task.rewards("Full Price: 282.84", item)["price"] == pytest.approx(1 - math.log(2**0.5) / math.log(2), 1e-4)
    assert 0.8 < half["title"] < 1.0
    unread = task.rewards("no idea", item)
    assert unread == {"format": 0.0, "title": 0.0, "category": 0.0, "price": 0.0}
    conversation = build_task(TaskConfig())
    assert conversation.rewards("red", {"references": ["Red."]}) == {"edit_similarity": 1.0}


def test_what_a_prediction_table_holds_per_task():
    catalogue = build_task(TaskConfig(task="catalogue"))
    (item,) = catalogue.eval_items([ROW], "catalogue", None)
    assert catalogue.table_columns == ("price_error",)
    assert catalogue.table_cells(item, "Full Price: 150") == [50.0] and catalogue.table_cells(item, "?") == [None]
    assert catalogue.item_record(item) == {
        "id": "7",
        "truth": {"title": "Red Tote", "category3_code": "BAGS", "full_price": 200.0},
        "references": [ANSWER],
    }
    assert set(catalogue.answer_record(item, ANSWER)) == {"answer", "parsed", "errors"}
    no_price = build_task(TaskConfig(task="catalogue", answer_template="Product: {title}"))
    assert no_price.table_columns == () and no_price.price_points([item], ["Product: Red Tote"]) is None
    conversation = build_task(TaskConfig())
    assert conversation.table_columns == () and conversation.parse("anything") == {}
    assert not conversation.fixed_question and catalogue.fixed_question
