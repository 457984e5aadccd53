"""The batched processor: official tokenisation of image tags, padding, image routing, saving in the Hub layout."""

import json

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v import Phi3VProcessor

from .conftest import hub_files


OFFICIAL_PROMPT = "<|user|>\n<|image_1|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n"


@pytest.fixture(scope="module")
def real_processor():
    return AutoProcessor.from_pretrained(hub_files("Phi-3-vision-128k-instruct"))


def test_official_prompt_token_ids_on_the_real_tokenizer(real_processor):
    out = real_processor(OFFICIAL_PROMPT, [Image.new("RGB", (1344, 1008))], return_tensors="pt")
    ids = out["input_ids"][0].tolist()
    assert ids[:4] == [1, 32010, 29871, 13]
    assert ids[4 : 4 + 1921] == [-1] * 1921  # 3x4 crops at num_crops=16
    # A BOS follows every image block, as the official chunk-wise tokenisation produces.
    assert ids[4 + 1921 : 4 + 1921 + 3] == [1, 29871, 13]
    # `<|assistant|>` is rstrip in the real tokenizer: the newline after it disappears.
    assert ids[-4:] == [32007, 29871, 13, 32001]
    assert out["attention_mask"].all()
    assert out["image_sizes"].tolist() == [[1008, 1344]]


def test_chat_template_is_the_official_one(real_processor):
    messages = [{"role": "user", "content": "<|image_1|>\nWhat is shown in this image?"}]
    rendered = real_processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == OFFICIAL_PROMPT


def test_batch_routes_images_pads_and_masks_by_length(real_processor):
    texts = [
        "<|user|>\n<|image_1|>\n<|image_2|>\nCompare.<|end|>\n<|assistant|>\n",
        "<|user|>\nNo image here.<|end|>\n<|assistant|>\n",
        OFFICIAL_PROMPT,
    ]
    images = [[Image.new("RGB", (640, 640)), Image.new("RGB", (1280, 640))], [], [Image.new("RGB", (336, 336))]]
    for side in ("left", "right"):
        out = real_processor(texts, images, padding_side=side, num_crops=4)
        assert out["pixel_values"].shape == (3, 5, 3, 336, 336)
        ids, mask = out["input_ids"], out["attention_mask"]
        singles = [real_processor(t, i, num_crops=4)["input_ids"][0] for t, i in zip(texts, images, strict=True)]
        for row, single in enumerate(singles):
            real = ids[row][mask[row].bool()]
            assert torch.equal(real, single)
            padding = ids[row][~mask[row].bool()]
            assert (padding == real_processor.tokenizer.pad_token_id).all()
        assert (ids[0] == -1).sum() == 757 and (ids[0] == -2).sum() == 457
        assert (ids[2] == -1).sum() == 757
        first_real = mask[1].nonzero()[0].item()
        assert first_real > 0 if side == "left" else first_real == 0


def test_flat_image_list_is_handed_out_by_tag_count(real_processor):
    texts = ["<|user|>\n<|image_1|>\nA<|end|>\n", "<|user|>\n<|image_1|>\n<|image_2|>\nB<|end|>\n"]
    sizes = [(336, 336), (672, 336), (336, 672)]
    out = real_processor(texts, [Image.new("RGB", s) for s in sizes], num_crops=4)
    per_sample_images = [[Image.new("RGB", sizes[0])], [Image.new("RGB", s) for s in sizes[1:]]]
    per_sample = real_processor(texts, per_sample_images, num_crops=4)
    assert torch.equal(out["input_ids"], per_sample["input_ids"])


def test_endoftext_in_text_is_kept_in_the_attention_mask(real_processor):
    # The pad id (<|endoftext|>) is also a real token; the mask comes from lengths, not from the pad id.
    out = real_processor(["<|user|>\nHi<|end|>\n<|endoftext|>", "<|user|>\nA longer text here<|end|>\n"])
    assert out["input_ids"][0][out["attention_mask"][0].bool()][-1].item() == 32000


@pytest.mark.parametrize(
    ("text", "num_images", "message"),
    [
        ("<|image_1|><|image_3|>", 2, "must be exactly"),
        ("<|image_2|>", 1, "must be exactly"),
        ("no tags", 1, "must be exactly"),
        ("<|image_1|>", 0, "must be exactly"),
    ],
)
def test_tag_and_image_mismatches_are_clear_errors(real_processor, text, num_images, message):
    with pytest.raises(ValueError, match=message):
        real_processor(text, [Image.new("RGB", (50, 50))] * num_images if num_images else None)


def test_batch_decode_drops_image_placeholders(real_processor):
    out = real_processor(OFFICIAL_PROMPT, [Image.new("RGB", (336, 336))], num_crops=1)
    text = real_processor.batch_decode(out["input_ids"], skip_special_tokens=True)[0]
    assert "What is shown in this image?" in text


def test_saving_keeps_the_official_layout_and_tokenisation(real_processor, tmp_path):
    real_processor.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["num_crops"] == 16 and saved["image_processor_type"] == "Phi3VImageProcessor"
    # Load from a directory without config.json (e.g. an adapter directory): same ids as the Hub files give.
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, Phi3VProcessor)
    image = [Image.new("RGB", (500, 300))]
    assert torch.equal(
        reloaded(OFFICIAL_PROMPT, image)["input_ids"], real_processor(OFFICIAL_PROMPT, image)["input_ids"]
    )


def test_tiny_checkpoint_processor_uses_tiny_crops(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    out = processor(OFFICIAL_PROMPT, [Image.new("RGB", (120, 60))])
    assert out["pixel_values"].shape[-1] == 56
    # 56 px crops of 14 px patches: 2x2 merged tokens per crop; 120x60 at num_crops=4 gives 1x2 crops.
    assert (out["input_ids"] == -1).sum().item() == (2 + 1) * 4 + 1 + 2 * 2
