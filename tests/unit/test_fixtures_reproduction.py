"""The reproduction fixtures have the Hub's exact schemas and splits, are deterministic, and their answers can be
read from their pictures."""

from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from datasets import Features

from phi3v.data.converters import from_docvqa, from_the_cauldron
from phi3v.fixtures.reproduction import COLOURS, make_reproduction_fixtures
from phi3v.tasks import TASKS


REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL = {"docvqa_train": 8, "docvqa_test": 6, "cauldron_docvqa": 6, "hateful_memes": 12, "nlvr2": 10}

# `dataset_info.features` of the Hub cards: prashanthpillai/docvqa_1000_examples (the same data and card as
# nielsr/docvqa_1200_examples, whose card is empty) and HuggingFaceM4/the_cauldron (identical for every config).
DOCVQA_CARD = """
- {name: id, dtype: string}
- {name: image, dtype: image}
- name: query
  struct:
  - {name: de, dtype: string}
  - {name: en, dtype: string}
  - {name: es, dtype: string}
  - {name: fr, dtype: string}
  - {name: it, dtype: string}
- {name: answers, sequence: string}
- {name: words, sequence: string}
- name: bounding_boxes
  sequence: {sequence: float32, length: 4}
- name: answer
  struct:
  - {name: match_score, dtype: float64}
  - {name: matched_text, dtype: string}
  - {name: start, dtype: int64}
  - {name: text, dtype: string}
"""
CAULDRON_CARD = """
- {name: images, sequence: image}
- name: texts
  list:
  - {name: user, dtype: string}
  - {name: assistant, dtype: string}
  - {name: source, dtype: string}
"""


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    path = tmp_path_factory.mktemp("reproduction") / "fixtures"
    make_reproduction_fixtures(path, seed=0, num_rows=SMALL)
    return path


def load(path, *parts):
    return datasets.load_from_disk(str(path.joinpath(*parts)))


def test_schemas_and_splits_are_the_hubs(fixtures):
    docvqa = load(fixtures, "docvqa_1200_examples")
    assert list(docvqa) == ["train", "test"]
    assert [len(docvqa[split]) for split in docvqa] == [SMALL["docvqa_train"], SMALL["docvqa_test"]]
    for split in docvqa.values():
        assert split.features == Features._from_yaml_list(yaml.safe_load(DOCVQA_CARD))
    for config in ("docvqa", "hateful_memes", "nlvr2"):
        cauldron = load(fixtures, "the_cauldron", config)
        assert (
            list(cauldron) == ["train"]
            and len(cauldron["train"]) == SMALL[f"cauldron_{config}" if config == "docvqa" else config]
        )
        assert cauldron["train"].features == Features._from_yaml_list(yaml.safe_load(CAULDRON_CARD))


def colours_in(image):
    """The fixture palette colours that cover at least 5% of the image."""
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    return {name for name, rgb in COLOURS.items() if (pixels == rgb).all(axis=1).mean() > 0.05}


def test_docvqa_answers_are_in_the_pictures(fixtures):
    for row in load(fixtures, "docvqa_1200_examples", "test"):
        assert row["id"].startswith("test_") and set(row["query"]) == {"de", "en", "es", "fr", "it"}
        assert all(len(box) == 4 for box in row["bounding_boxes"]) and len(row["words"]) == 3
        (colour,) = colours_in(row["image"])  # one coloured shape per page
        if row["query"]["en"] == "What colour is the shape?":
            assert row["answers"] == [colour, colour.lower()]
        else:
            assert row["answers"][0] in ("circle", "square", "triangle")
        assert TASKS["docvqa"].to_eval_item(row)["references"] == row["answers"]
        assert from_docvqa(row)["messages"][1]["content"] == row["answers"][0]
    for row in load(fixtures, "the_cauldron", "docvqa", "train"):
        assert len(row["images"]) == 1 and len(row["texts"]) == 2
        colour_turn = next(text for text in row["texts"] if "colour" in text["user"])
        assert colours_in(row["images"][0]) == {colour_turn["assistant"]}


def test_hateful_memes_label_is_the_red_symbol(fixtures):
    rows = load(fixtures, "the_cauldron", "hateful_memes", "train")
    labels = [row["texts"][0]["assistant"] for row in rows]
    assert labels.count("yes") == labels.count("no") == len(rows) // 2
    for row in rows:
        assert len(row["images"]) == 1 and len(row["texts"]) == 1 and row["texts"][0]["source"] == "hateful_memes"
        expected = {"Red"} if row["texts"][0]["assistant"] == "yes" else {"Green"}
        assert colours_in(row["images"][0]) == expected


def test_nlvr2_rows_have_two_images_and_true_statements(fixtures):
    rows = load(fixtures, "the_cauldron", "nlvr2", "train")
    assert {len(row["images"]) for row in rows} == {2}
    assert {len(row["texts"]) for row in rows} == {1, 2}
    answers = [row["texts"][0]["assistant"] for row in rows]
    assert answers.count("True") == answers.count("False")
    for row in rows:
        (left,), (right,) = (colours_in(image) for image in row["images"])
        assert row["texts"][0]["assistant"] == str(left == "Red")
        assert row["texts"][1:] == [] or row["texts"][1]["assistant"] == str(left == right)
        conversation = from_the_cauldron(row)
        assert conversation["messages"][0]["content"].startswith("<|image_1|><|image_2|>\n")


def test_same_seed_same_bytes_other_seed_other_rows(tmp_path, fixtures):
    make_reproduction_fixtures(tmp_path / "again", seed=0, num_rows=SMALL)
    make_reproduction_fixtures(tmp_path / "other", seed=1, num_rows=SMALL)
    for parts in (("docvqa_1200_examples", "test"), ("the_cauldron", "nlvr2", "train")):
        first, again, other = (load(root, *parts) for root in (fixtures, tmp_path / "again", tmp_path / "other"))
        assert first.data.table.equals(again.data.table)
        assert not first.data.table.equals(other.data.table)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_reproduction_fixtures(target, num_rows=SMALL)
    with pytest.raises(FileExistsError, match="refusing to delete"):
        make_reproduction_fixtures(target, num_rows=SMALL, overwrite=True)
    assert (target / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="not among"):
        make_reproduction_fixtures(tmp_path / "x", num_rows={"memes": 3})
