"""DPO data: hard negatives, on-policy pairs and the preference collator's masks."""

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate
from phi3v.tasks.catalogue.negatives import HardNegatives, build_preference_pairs, is_correct, preference_pair
from phi3v.training.preference_collator import Phi3VPreferenceCollator


DEFAULT = AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)
render_answer = DEFAULT.render


ROWS = [
    {"product_code": "1", "title": "Black Check Scarf", "category2_code": "ACCESSORIES", "category3_code": "SCARVES",
     "full_price": 590.0, "image": Image.new("RGB", (60, 60), (0, 0, 0))},
    {"product_code": "2", "title": "Red Plain Scarf", "category2_code": "ACCESSORIES", "category3_code": "SCARVES",
     "full_price": 450.0, "image": Image.new("RGB", (120, 60), (200, 0, 0))},
    {"product_code": "3", "title": "Camel Leather Belt", "category2_code": "ACCESSORIES", "category3_code": "BELTS",
     "full_price": 390.0, "image": Image.new("RGB", (50, 110), (150, 100, 50))},
    {"product_code": "4", "title": "Navy Trench Coat", "category2_code": "OUTERWEAR", "category3_code": "COATS",
     "full_price": 2290.0, "image": Image.new("RGB", (80, 80), (0, 0, 90))},
]  # fmt: skip


def test_hard_negatives_change_one_field_plausibly():
    negatives = HardNegatives(ROWS, seed=3)
    for _ in range(20):
        price = DEFAULT.parse(negatives.make(ROWS[0], "price"))
        assert (price["title"], price["category3_code"]) == ("Black Check Scarf", "SCARVES")
        assert 0.1 * 590 - 1 <= abs(price["full_price"] - 590.0) <= 0.4 * 590 + 1
        category = DEFAULT.parse(negatives.make(ROWS[0], "category"))
        assert category["category3_code"] == "BELTS"  # the only other category of the same department
        assert (category["title"], category["full_price"]) == ("Black Check Scarf", 590.0)
        title = DEFAULT.parse(negatives.make(ROWS[0], "title"))
        assert title["title"] == "Red Plain Scarf"  # the other product of the same category
    # A department with one category borrows from the rest of the catalogue.
    assert DEFAULT.parse(negatives.make(ROWS[3], "category"))["category3_code"] in {"SCARVES", "BELTS"}


def test_a_custom_template_builds_pairs_with_its_own_answers():
    template = AnswerTemplate("{title} costs ${full_price}")
    negatives = HardNegatives(ROWS, template, seed=0)
    generated = ["Red Plain Scarf costs $450.00", "Black Check Scarf costs $100", "nonsense", "x"]
    pairs = build_preference_pairs(ROWS, negatives, [generated[1], generated[0], *generated[2:]])
    assert pairs[0]["kind"] == "on_policy" and pairs[0]["chosen"][0]["content"] == "Black Check Scarf costs $590.00"
    assert pairs[1]["kind"] in {"price", "title"}  # right answer: a hard negative of a kind the template shows
    assert is_correct("red plain scarf costs $450", ROWS[1], template)
    with pytest.raises(ValueError, match="changes a column"):
        build_preference_pairs(ROWS, negatives, kinds=["category"])


def test_same_seed_same_negatives():
    first = [HardNegatives(ROWS, seed=7).make(row, "price") for row in ROWS]
    assert first == [HardNegatives(ROWS, seed=7).make(row, "price") for row in ROWS]


def test_on_policy_pairs_use_wrong_answers_and_fall_back_for_right_ones():
    generated = [
        render_answer(ROWS[0]),  # right: falls back to a hard negative
        "Product: Red Plain Scarf, Category: SCARVES, Full Price: 999.00",  # wrong price
        "Product:  Camel Leather Belt , Category: belts, Full Price: $390",  # right, written differently
        "garbage",  # unparseable: wrong
    ]
    pairs = build_preference_pairs(ROWS, HardNegatives(ROWS), generated)
    assert [pair["kind"] for pair in pairs][1::2] == ["on_policy", "on_policy"]
    assert pairs[0]["kind"] in {"price", "category", "title"} and pairs[2]["kind"] != "on_policy"
    assert pairs[1]["rejected"] == [{"role": "assistant", "content": generated[1]}]
    assert pairs[1]["chosen"] == [{"role": "assistant", "content": render_answer(ROWS[1])}]
    assert pairs[1]["prompt"] == [{"role": "user", "content": "<|image_1|>What is shown in this image?"}]
    assert is_correct(generated[2], ROWS[2], DEFAULT) and not is_correct(generated[1], ROWS[1], DEFAULT)


def test_preference_collator_scores_only_the_answers(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    tokenizer = processor.tokenizer
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    pairs = [preference_pair(ROWS[0], "Product: X, Category: Y, Full Price: 1.00", "title")]
    pairs.append(preference_pair(ROWS[1], render_answer(dict(ROWS[1], full_price=300.0)), "price"))
    batch = Phi3VPreferenceCollator(processor)(pairs)

    assert batch["input_ids"].shape[0] == 4  # chosen 0, chosen 1, rejected 0, rejected 1
    assert batch["pixel_values"].shape[0] == 4
    assert torch.equal(batch["pixel_values"][:2], batch["pixel_values"][2:])
    assert torch.equal(batch["image_sizes"][:2], batch["image_sizes"][2:])
    answers = [
        render_answer(ROWS[0]),
        render_answer(ROWS[1]),
        "Product: X, Category: Y, Full Price: 1.00",
        render_answer(dict(ROWS[1], full_price=300.0)),
    ]
    for row, answer in enumerate(answers):
        mask = batch["completion_mask"][row].bool()
        scored = batch["input_ids"][row][mask].tolist()
        # Exactly the answer's tokens and the closing <|end|>: what the tokenizer gives for the answer alone.
        expected = tokenizer(answer, add_special_tokens=False)["input_ids"] + [end_id]
        assert scored == expected, (row, tokenizer.convert_ids_to_tokens(scored))
        assert (batch["input_ids"][row][mask] >= 0).all()
        # The prompt before the answer holds this row's image placeholders, and all of it is unscored.
        first = int(mask.nonzero()[0])
        assert (batch["input_ids"][row][:first] < 0).any() and not mask[:first].any()
        # Nothing after <|end|> is scored (template newline, padding).
        assert not mask[first + len(expected) :].any()
    assert (batch["attention_mask"].sum(1) >= batch["completion_mask"].sum(1)).all()


def test_preference_collator_refuses_to_truncate(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    pairs = [preference_pair(ROWS[0], "Product: X, Category: Y, Full Price: 1.00", "title")]
    with pytest.raises(ValueError, match="max_length"):
        Phi3VPreferenceCollator(processor, max_length=10)(pairs)
