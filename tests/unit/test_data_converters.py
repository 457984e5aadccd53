"""The converters turn hand-made rows in each Hub layout (unused columns included) into `<|image_k|>` conversations,
pass the images through untouched and refuse rows they cannot convert, naming the problem."""

import json
import random

import pytest
from PIL import Image

from phi3v.data.converters import from_docvqa, from_llava, from_the_cauldron


def picture(colour="red", size=(8, 6)):
    return Image.new("RGB", size, colour)


def test_the_cauldron_multi_image_multi_turn():
    left, right = picture("red"), picture("blue")
    row = {
        "images": [left, right],
        "texts": [
            {"user": "Is the left image red?", "assistant": "True", "source": "nlvr2"},
            {"user": "Is the right image red?", "assistant": "False", "source": "nlvr2"},
            {"user": "How many images?", "assistant": "Two.", "source": "nlvr2"},
        ],
    }
    conversation = from_the_cauldron(row)
    assert conversation["images"][0] is left and conversation["images"][1] is right
    assert conversation["messages"] == [
        {"role": "user", "content": "<|image_1|><|image_2|>\nIs the left image red?"},
        {"role": "assistant", "content": "True"},
        {"role": "user", "content": "Is the right image red?"},
        {"role": "assistant", "content": "False"},
        {"role": "user", "content": "How many images?"},
        {"role": "assistant", "content": "Two."},
    ]


def test_the_cauldron_single_image_is_the_cookbook_prompt():
    row = {"images": [picture()], "texts": [{"user": "Is it hateful?", "assistant": "no", "source": "hateful_memes"}]}
    assert from_the_cauldron(row)["messages"][0]["content"] == "<|image_1|>\nIs it hateful?"


def test_the_cauldron_without_images_or_texts():
    row = {"images": [], "texts": [{"user": "Hi", "assistant": "Hello", "source": "x"}]}
    assert from_the_cauldron(row) == {"images": [], "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}
    ]}  # fmt: skip
    with pytest.raises(ValueError, match="no `texts`"):
        from_the_cauldron({"images": [picture()], "texts": []})


@pytest.fixture
def llava_folder(tmp_path):
    (tmp_path / "coco").mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "green")):
        picture(colour).save(tmp_path / "coco" / name)
    return tmp_path


def test_llava_row_from_json(llava_folder):
    record = json.loads(
        '{"id": "000000033471", "image": "coco/a.png", "conversations": ['
        '{"from": "human", "value": "<image>\\nWhat colour is it?"}, {"from": "gpt", "value": "Red."},'
        '{"from": "human", "value": "Are you sure?"}, {"from": "gpt", "value": "Yes."}]}'
    )
    conversation = from_llava(record, image_folder=llava_folder)
    assert conversation["messages"] == [
        {"role": "user", "content": "<|image_1|>\nWhat colour is it?"},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "Are you sure?"},
        {"role": "assistant", "content": "Yes."},
    ]
    (image,) = conversation["images"]
    assert isinstance(image, Image.Image) and image.getpixel((0, 0)) == (255, 0, 0)


def test_llava_several_images_in_place_and_system_turn(llava_folder):
    row = {
        "id": "pair",
        "image": ["coco/a.png", str(llava_folder / "coco" / "b.png")],  # relative and absolute paths
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "<image>\n<image>\nSame colour?"},
            {"from": "gpt", "value": "No."},
        ],
    }
    conversation = from_llava(row, image_folder=llava_folder)
    assert [m["role"] for m in conversation["messages"]] == ["system", "user", "assistant"]
    assert conversation["messages"][1]["content"] == "<|image_1|>\n<|image_2|>\nSame colour?"
    assert [image.getpixel((0, 0)) for image in conversation["images"]] == [(255, 0, 0), (0, 128, 0)]


def test_llava_images_without_token_go_first_in_the_first_human_turn(llava_folder):
    row = {
        "image": ["coco/a.png", "coco/b.png"],
        "conversations": [{"from": "human", "value": "Compare them."}, {"from": "gpt", "value": "Different."}],
    }
    messages = from_llava(row, image_folder=llava_folder)["messages"]
    assert messages[0]["content"] == "<|image_1|><|image_2|>\nCompare them."


def test_llava_text_only_row():
    row = {"id": "t", "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}
    assert from_llava(row) == {"images": [], "messages": [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}
    ]}  # fmt: skip


def test_llava_bad_rows_are_refused_naming_the_problem(llava_folder):
    missing = {"id": "m", "image": "coco/missing.jpg", "conversations": [{"from": "human", "value": "<image>\nQ"}]}
    with pytest.raises(FileNotFoundError, match="coco/missing.jpg"):
        from_llava(missing, image_folder=llava_folder)
    two_tokens = {"id": "c", "image": "coco/a.png", "conversations": [{"from": "human", "value": "<image><image>"}]}
    with pytest.raises(ValueError, match="2 `<image>` tokens but 1 images"):
        from_llava(two_tokens, image_folder=llava_folder)
    no_image = {"id": "n", "conversations": [{"from": "human", "value": "<image>\nQ"}]}
    with pytest.raises(ValueError, match="1 `<image>` tokens but 0 images"):
        from_llava(no_image)
    bad_role = {"id": "r", "conversations": [{"from": "bot", "value": "Q"}]}
    with pytest.raises(ValueError, match="unknown `from` \\['bot'\\]"):
        from_llava(bad_role)


def docvqa_row(query):
    """A row of `nielsr/docvqa_1200_examples` with every column of the Hub schema."""
    return {
        "id": "train_0",
        "image": picture("white", (64, 80)),
        "query": query,
        "answers": ["Total: 42", "42"],
        "words": ["Total:", "42"],
        "bounding_boxes": [[0.1, 0.1, 0.3, 0.2], [0.35, 0.1, 0.5, 0.2]],
        "answer": {"match_score": 1.0, "matched_text": "42", "start": 1, "text": "42"},
    }


def test_docvqa_row_with_languages_is_the_cookbook_eval_prompt():
    languages = {"de": "Was ist die Summe?", "en": "What is the total?", "es": "x", "fr": "y", "it": "z"}
    row = docvqa_row(languages)
    conversation = from_docvqa(row)
    assert conversation["images"][0] is row["image"]
    assert conversation["messages"] == [
        {"role": "user", "content": "<|image_1|>\nWhat is the total?\nAnswer briefly."},
        {"role": "assistant", "content": "Total: 42"},
    ]


def test_docvqa_string_query_and_drawn_answer():
    row = docvqa_row("What is the total?")
    assert from_docvqa(row)["messages"][0]["content"] == "<|image_1|>\nWhat is the total?\nAnswer briefly."
    drawn = {from_docvqa(row, rng=random.Random(seed))["messages"][1]["content"] for seed in range(20)}
    assert drawn == {"Total: 42", "42"}
    with pytest.raises(ValueError, match="no answers"):
        from_docvqa({**row, "answers": []})
