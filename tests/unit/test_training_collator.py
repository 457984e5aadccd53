"""The SFT collator on catalogue rows: labels are exactly the answer and its <|end|>; mixed image sizes and text-only
rows batch together; lengths for grouping come from image headers without decoding; long rows are dropped, never
truncated. (Other layouts: tests/unit/test_training_formats.py.)"""

import functools
import io
import logging

import datasets
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

import phi3v  # noqa: F401
from phi3v.tasks.catalogue import AnswerTemplate, to_conversation
from phi3v.training import Phi3VSFTCollator, add_length_column, padding_share


def catalogue_collator(processor, question="What is shown in this image?", answer_template=None, max_length=None):
    """The SFT collator reading catalogue rows, as sft.py builds it for a catalogue."""
    template = AnswerTemplate(answer_template) if answer_template else None
    return Phi3VSFTCollator(
        processor, max_length, functools.partial(to_conversation, question=question, template=template)
    )


def catalogue_row(title, category, price, size=None, colour=(200, 30, 40)):
    image = None if size is None else Image.new("RGB", size, colour)
    width, height = size if size is not None else (None, None)
    return {
        "image": image,
        "image_width": width,
        "image_height": height,
        "title": title,
        "category3_code": category,
        "full_price": price,
    }


ROWS = [
    catalogue_row("Black Check Scarf", "SCARVES", 390.0, size=(300, 200)),  # landscape: 2x2 crops
    catalogue_row("Navy Wallet", "N.A.", 1290.0),  # no image
    catalogue_row("Red Plain Trench Coat", "TRENCH COATS", 2990.0, size=(100, 400)),  # tall: 4x1 crops
]
ANSWERS = [
    "Product: Black Check Scarf, Category: SCARVES, Full Price: 390.00<|end|>",
    "Product: Navy Wallet, Category: N.A., Full Price: 1,290.00<|end|>",
    "Product: Red Plain Trench Coat, Category: TRENCH COATS, Full Price: 2,990.00<|end|>",
]


@pytest.fixture(scope="module")
def processor(tiny_checkpoint):
    return AutoProcessor.from_pretrained(tiny_checkpoint)


def test_labels_are_exactly_the_answer_and_its_end_token(processor):
    collator = catalogue_collator(processor)
    batch = collator(ROWS)
    tokenizer = processor.tokenizer
    for i, answer in enumerate(ANSWERS):
        labels, input_ids = batch["labels"][i], batch["input_ids"][i]
        kept = (labels != -100).nonzero().flatten()
        # One contiguous span, equal to the input tokens there, decoding to the answer and <|end|>.
        assert kept.tolist() == list(range(int(kept[0]), int(kept[-1]) + 1))
        assert torch.equal(labels[kept], input_ids[kept])
        assert tokenizer.decode(labels[kept]) == answer
        # The prompt before it ends with the generation prompt (the tokenizer folds its newline into `<|assistant|>`,
        # as Phi-3's does); only the template's newline follows <|end|>.
        assert tokenizer.convert_ids_to_tokens(int(input_ids[int(kept[0]) - 1])) == "<|assistant|>"
        length = int(batch["attention_mask"][i].sum())
        assert tokenizer.decode(input_ids[int(kept[-1]) + 1 : length]).strip() == ""
        assert (labels[length:] == -100).all()  # padding


def test_image_placeholders_and_padding_never_have_labels(processor):
    batch = catalogue_collator(processor)(ROWS)
    assert (batch["labels"][batch["input_ids"] < 0] == -100).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    assert (batch["labels"] >= -100).all() and not ((batch["labels"] < 0) & (batch["labels"] != -100)).any()


def test_mixed_crop_grids_and_text_only_rows_batch_together(processor):
    batch = catalogue_collator(processor)(ROWS)
    num_crops = processor.image_processor.num_crops
    assert batch["pixel_values"].shape == (2, num_crops + 1, 3, 56, 56)  # the two images, in row order
    assert batch["image_sizes"].tolist() == [[112, 112], [224, 56]]
    image_tokens = (batch["input_ids"] < 0).sum(dim=1).tolist()
    assert image_tokens == [processor.image_processor.num_image_tokens(300, 200), 0, 31]
    assert (batch["input_ids"][0] < 0).sum() != (batch["input_ids"][2] < 0).sum()
    # Right padding, with the mask from lengths: every row starts at position 0.
    assert (batch["attention_mask"][:, 0] == 1).all()
    assert sorted(batch) == ["attention_mask", "image_sizes", "input_ids", "labels", "pixel_values"]


def test_a_batch_without_images_has_no_pixel_values(processor):
    batch = catalogue_collator(processor)([ROWS[1], ROWS[1]])
    assert "pixel_values" not in batch and (batch["input_ids"] >= 0).all()


def test_collated_batch_trains_the_model(processor, tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    batch = catalogue_collator(processor)(ROWS)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    projector = model.model.vision_embed_tokens.img_projection[0].weight
    assert projector.grad is not None and projector.grad.abs().sum() > 0  # the images reach the loss


def test_question_and_answer_template_come_from_the_recipe(processor):
    collator = catalogue_collator(
        processor, question="Describe the product.", answer_template="{title} ({full_price})"
    )
    assert collator.conversation(ROWS[0]).messages[0] == {
        "role": "user",
        "content": "<|image_1|>Describe the product.",
    }
    batch = collator([ROWS[0]])
    labels = batch["labels"][0]
    assert processor.tokenizer.decode(labels[labels != -100]) == "Black Check Scarf (390.00)<|end|>"


def test_rows_longer_than_max_length_raise_instead_of_truncating(processor):
    with pytest.raises(ValueError, match="max_length=40"):
        catalogue_collator(processor, max_length=40)(ROWS)


def test_sequence_length_matches_the_collated_length(processor):
    collator = catalogue_collator(processor)
    batch = collator(ROWS)
    assert [collator.sequence_length(row) for row in ROWS] == batch["attention_mask"].sum(dim=1).tolist()


def test_official_processors_give_answer_only_labels(official_files):
    processor = AutoProcessor.from_pretrained(official_files)
    processor.image_processor.num_crops = 4
    batch = catalogue_collator(processor)([ROWS[0], catalogue_row("Beige Tote", "TOTE BAGS", 890.0, size=(640, 640))])
    labels = batch["labels"][1]
    assert processor.tokenizer.decode(labels[labels != -100]) == (
        "Product: Beige Tote, Category: TOTE BAGS, Full Price: 890.00<|end|>"
    )
    assert int((batch["input_ids"][1] < 0).sum()) == 757  # a square photo at 4 crops


def undecodable_catalogue(rows):
    """A dataset like a prepared catalogue, except that its image files hold garbage where the pixels are: the size can
    be read from the header, decoding would fail."""

    def header_only(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = bytearray(buffer.getvalue())
        pixels = data.index(b"IDAT") + 4
        data[pixels : pixels + 16] = b"\xff" * 16  # not a zlib stream
        with pytest.raises(Exception):  # noqa: B017  (whatever PIL raises, it cannot decode this)
            Image.open(io.BytesIO(bytes(data))).load()
        return {"bytes": bytes(data), "path": None}

    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "image"}
    columns["image"] = [None if row["image"] is None else header_only(row["image"]) for row in rows]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "image_width": datasets.Value("int32"),
            "image_height": datasets.Value("int32"),
            "title": datasets.Value("string"),
            "category3_code": datasets.Value("string"),
            "full_price": datasets.Value("float64"),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


def test_length_column_needs_no_pixels_and_drops_long_rows(processor, caplog):
    collator = catalogue_collator(processor)
    expected = [collator.sequence_length(row) for row in ROWS]
    dataset = add_length_column(undecodable_catalogue(ROWS), collator)
    assert dataset["length"] == expected
    with caplog.at_level(logging.WARNING, logger="phi3v"):
        kept = add_length_column(undecodable_catalogue(ROWS), collator, max_length=max(expected) - 1)
    assert kept["title"] == [
        row["title"] for row, length in zip(ROWS, expected, strict=True) if length < max(expected)
    ]
    assert len(kept) == 2
    assert f"Dropped 1 of 3 rows longer than max_length={max(expected) - 1}" in caplog.text
    with pytest.raises(ValueError, match="No row fits"):
        add_length_column(undecodable_catalogue(ROWS), collator, max_length=10)


def test_padding_share_by_hand():
    lengths = [10, 10, 6, 2]
    assert padding_share(lengths, [[0, 1], [2, 3]]) == pytest.approx(1 - 28 / 32)
    assert padding_share(lengths, [[0, 2], [1, 3]]) == pytest.approx(1 - 28 / 40)
