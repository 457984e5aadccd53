"""The Cookbook's metrics on hand-computed cases, and against a transcription of its own formulas; the tasks' eval
items; the published table's internal consistency."""

import random

import pytest
from PIL import Image

from phi3v.data.converters import from_the_cauldron
from phi3v.tasks import PUBLISHED, TASKS, anls, cookbook_accuracy


@pytest.mark.parametrize(
    "prediction, answers, expected",
    [
        ("42", ["42"], 1.0),
        # the 0.5 boundary: a normalised distance of exactly 0.5 scores 0, anything below scores 1 - distance
        ("ab", ["ac"], 0.0),
        ("abcd", ["abxy"], 0.0),
        ("abc", ["abd"], 2 / 3),
        ("abcde", ["abxye"], 0.6),
        # distance over the longer string
        ("abcdef", ["abc"], 0.0),
        ("abcd", ["abc"], 0.75),
        # case-sensitive
        ("PARIS", ["Paris"], 0.0),
        ("paris", ["Paris"], 0.8),
        # only the prediction is cleaned: outer whitespace, then dots at both ends
        ("Paris.", ["Paris"], 1.0),
        ("  Paris...\n", ["Paris"], 1.0),
        (".5", ["5"], 1.0),
        ("Paris .", ["Paris"], 1 - 1 / 6),  # strip() then strip('.') leaves the inner space
        ("Paris", ["Paris."], 1 - 1 / 6),  # the reference keeps its dot
        ("New  York", ["New York"], 1 - 1 / 9),  # inner whitespace is not collapsed
        # several references: the best one counts
        ("4.2", ["42", "4.2", "forty two"], 1.0),
        ("colour", ["hue", "color"], 1 - 1 / 6),
        ("zzz", ["a", "b"], 0.0),
        # an empty prediction scores 0, even against an empty reference
        ("", ["42"], 0.0),
        ("", [""], 0.0),
        (" .. ", ["x"], 0.0),
        # unicode: code points, no normalisation
        ("cafe", ["café"], 0.75),
        ("cafe\u0301", ["café"], 0.6),
        ("東京", ["東京都"], 2 / 3),
        ("東京都。", ["東京都"], 0.75),  # the ideographic full stop is not a '.'
    ],
)
def test_anls_hand_computed(prediction, answers, expected):
    assert anls(prediction, answers) == pytest.approx(expected)


def test_anls_threshold_argument():
    assert anls("ab", ["ac"], threshold=0.51) == pytest.approx(0.5)
    assert anls("abc", ["abd"], threshold=1 / 3) == 0.0


@pytest.mark.parametrize(
    "prediction, answers, expected",
    [
        ("Yes.", ["yes"], 1.0),
        ("  NO \n", ["no"], 1.0),
        ("no", ["No."], 1.0),  # both sides are normalised
        ("yes", ["no"], 0.0),
        ("True", ["true"], 1.0),
        ("True statement", ["true"], 0.0),  # exact match, not prefix
        ("false", ["true", "False"], 1.0),
        ("Café", ["café"], 1.0),
        ("café", ["cafe"], 0.0),
        ("", ["no"], 0.0),
        ("..", [""], 1.0),  # the Cookbook compares normalised strings, so two empties match
    ],
)
def test_cookbook_accuracy_hand_computed(prediction, answers, expected):
    assert cookbook_accuracy(prediction, answers) == expected


def cookbook_anls(ground_truths, prediction, tau=0.5):
    """The Cookbook's `similarity_score` / `normalized_levenshtein` with python-Levenshtein, transcribed."""

    def distance(s1, s2):  # textbook dynamic programme, written independently of phi3v's
        table = [[i + j if i * j == 0 else 0 for j in range(len(s2) + 1)] for i in range(len(s1) + 1)]
        for i in range(1, len(s1) + 1):
            for j in range(1, len(s2) + 1):
                cost = s1[i - 1] != s2[j - 1]
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
        return table[-1][-1]

    def similarity_score(a_ij, o_q_i):
        nl = distance(a_ij, o_q_i) / max(len(a_ij), len(o_q_i))
        return 1 - nl if nl < tau else 0

    o_q_i = prediction.strip().strip(".")
    if len(o_q_i) == 0:
        return 0
    return max(similarity_score(a_ij, o_q_i) for a_ij in ground_truths)


def test_anls_equals_the_cookbook_formula_on_random_strings():
    rng = random.Random(0)
    alphabet = "abAB. 1é東"
    for _ in range(500):
        answers = ["".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(rng.randint(1, 3))]
        prediction = "".join(rng.choices(alphabet, k=rng.randint(0, 7)))
        assert anls(prediction, answers) == pytest.approx(cookbook_anls(answers, prediction))


def test_docvqa_eval_item():
    image = Image.new("RGB", (8, 8))
    row = {
        "id": "test_0",
        "image": image,
        "query": {"de": "d", "en": "What is the date?", "es": "e", "fr": "f", "it": "i"},
        "answers": ["1 May", "May 1"],
        "words": [],
        "bounding_boxes": [],
        "answer": {"match_score": 0.0, "matched_text": "", "start": 0, "text": ""},
    }
    item = TASKS["docvqa"].to_eval_item(row)
    assert item["images"] == [image]
    assert item["prompt"] == [{"role": "user", "content": "<|image_1|>\nWhat is the date?\nAnswer briefly."}]
    assert item["references"] == ["1 May", "May 1"]


def test_cauldron_eval_item_is_the_first_turn():
    images = [Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8), "red")]
    row = {
        "images": images,
        "texts": [
            {"user": "The left image has a circle.", "assistant": "True", "source": "nlvr2"},
            {"user": "The right image is red.", "assistant": "True", "source": "nlvr2"},
        ],
    }
    item = TASKS["nlvr2"].to_eval_item(row)
    assert item["images"] == images
    assert item["prompt"] == [{"role": "user", "content": "<|image_1|><|image_2|>\nThe left image has a circle."}]
    assert item["references"] == ["True"]
    # Training reads the_cauldron's layout, where every turn trains.
    assert TASKS["nlvr2"].train_source.format == "the_cauldron" and len(from_the_cauldron(row)["messages"]) == 4


def test_published_table_is_consistent():
    assert len({row.recipe for row in PUBLISHED}) == len(PUBLISHED) == 10
    for row in PUBLISHED:
        task = TASKS[row.task]
        assert row.method in ("full", "frozen-vision", "lora", "qlora")
        assert (row.lora_r is not None) == (row.lora_alpha is not None) == (row.method in ("lora", "qlora"))
        assert row.global_batch == 64 and 0 < row.value < 100 and row.epochs in (2, 3)
        assert row.recipe.startswith(f"cookbook/{row.task.replace('_', '-')}/")
        assert task.metric_name.endswith("x100") and task.tolerance in (3.0, 4.0)
    assert {row.eval_set for row in PUBLISHED} == {
        "nielsr/docvqa_1200_examples test",
        "HuggingFaceM4/the_cauldron hateful_memes train[:500]",
        "HuggingFaceM4/the_cauldron nlvr2 train[:500]",
    }
