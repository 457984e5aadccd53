"""The batched processor: official tokenisation of image tags, padding, image routing, saving in the Hub layout."""

import json

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v import Phi3VProcessor

from ..conftest import hub_files


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


@pytest.fixture(scope="module")
def tiny_processor(tiny_checkpoint):
    return AutoProcessor.from_pretrained(tiny_checkpoint)


def _photo(colour, size=(90, 50)):
    return Image.new("RGB", size, colour)


def test_apply_chat_template_on_structured_content_equals_the_flattened_prompt(tiny_processor, tmp_path):
    from phi3v.modeling.chat_format import to_phi3v_messages

    # Transparent images: PIL's plain RGB conversion (transformers' `load_image`) would make them black, not white.
    red = Image.new("RGBA", (90, 50), (200, 0, 0, 0))
    red.paste((200, 0, 0, 255), (0, 0, 45, 50))
    Image.new("LA", (40, 100), (30, 128)).save(tmp_path / "blue.png")
    blue = Image.open(tmp_path / "blue.png")
    messages = [
        {"role": "user", "content": [{"type": "image", "image": red}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A bag."}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And this?"}, {"type": "image", "path": str(tmp_path / "blue.png")}],
        },
    ]
    # `url` is how the pipeline and OpenAI-style messages name an image; a local path works there too.
    url_messages = [dict(m) for m in messages]
    url_messages[2] = {
        "role": "user",
        "content": [{"type": "text", "text": "And this?"}, {"type": "image", "url": str(tmp_path / "blue.png")}],
    }
    prompt = tiny_processor.apply_chat_template(to_phi3v_messages(messages), add_generation_prompt=True)
    assert prompt.count("<|image_1|>\n") == 1 and prompt.count("<|image_2|>\n") == 1
    expected = tiny_processor(prompt, [red, blue])
    for conversation in (messages, url_messages):
        assert tiny_processor.apply_chat_template(conversation, add_generation_prompt=True) == prompt
        out = tiny_processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        assert set(out) == set(expected)
        for key in expected:
            assert torch.equal(out[key], expected[key]), key
    # A batch of conversations, padded on the left as for generation.
    batch = tiny_processor.apply_chat_template(
        [messages, messages[:1]],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        processor_kwargs={"padding_side": "left"},
    )
    reference = tiny_processor(
        [prompt, tiny_processor.apply_chat_template(to_phi3v_messages(messages[:1]), add_generation_prompt=True)],
        [[red, blue], [red]],
        padding_side="left",
    )
    for key in reference:
        assert torch.equal(batch[key], reference[key]), key


def test_standard_processing_kwargs(tiny_processor):
    text = "<|user|>\n<|image_1|>\nWhat is it?<|end|>\n<|assistant|>\n"
    image = _photo((10, 200, 10))
    plain = tiny_processor(text, [image])
    ids = plain["input_ids"][0].tolist()
    bos = tiny_processor.tokenizer.bos_token_id
    assert ids.count(bos) == 2  # at the start and after the image block
    assert tiny_processor(text, [image], add_special_tokens=False)["input_ids"][0].tolist().count(bos) == 0
    # Flat and per-modality forms of the same kwargs agree.
    flat = tiny_processor(text, [image], num_crops=1, padding="max_length", max_length=len(ids) + 5)
    nested = tiny_processor(
        text,
        [image],
        images_kwargs={"num_crops": 1},
        text_kwargs={"padding": "max_length", "max_length": len(ids) + 5},
    )
    assert torch.equal(flat["input_ids"], nested["input_ids"]) and torch.equal(
        flat["pixel_values"], nested["pixel_values"]
    )
    assert flat["pixel_values"].shape[1] == 2  # num_crops=1: global view + one crop
    short = tiny_processor(text, [image], num_crops=1)["input_ids"].shape[1]
    assert flat["input_ids"].shape[1] == len(ids) + 5 and flat["attention_mask"].sum().item() == short < len(ids)
    padded = tiny_processor([text, "<|user|>\nHi<|end|>\n"], [[image], []], pad_to_multiple_of=8, padding_side="left")
    assert padded["input_ids"].shape[1] % 8 == 0 and padded["attention_mask"][:, 0].tolist() == [0, 0]
    assert "attention_mask" not in tiny_processor(text, [image], return_attention_mask=False)


def test_truncation_cuts_text_but_never_an_image(tiny_processor):
    text = "<|user|>\n<|image_1|>\nWhat is it?<|end|>\n<|assistant|>\n"
    image = _photo((10, 200, 10))
    ids = tiny_processor(text, [image])["input_ids"][0]
    truncated = tiny_processor(text, [image], truncation=True, max_length=len(ids) - 3)
    assert torch.equal(truncated["input_ids"][0], ids[:-3])
    first_image_token = (ids < 0).nonzero()[0].item()
    with pytest.raises(ValueError, match="cut through an image"):
        tiny_processor(text, [image], truncation=True, max_length=first_image_token + 2)
    text_only = tiny_processor("<|user|>\nA long question without images<|end|>\n", truncation=True, max_length=4)
    assert text_only["input_ids"].shape == (1, 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_crop": 4}, TypeError, "num_crop"),
        ({"return_tensors": "np"}, ValueError, "PyTorch"),
        ({"return_offsets_mapping": True}, ValueError, "return_offsets_mapping"),
        ({"images_kwargs": {"do_resize": False}}, ValueError, "do_resize"),
    ],
)
def test_unsupported_kwargs_are_clear_errors(tiny_processor, kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny_processor("<|user|>\n<|image_1|>\nHi<|end|>\n", [_photo((1, 2, 3))], **kwargs)


def test_pad_sequences_matches_hand_padding():
    from phi3v.modeling.processing_phi3_v import pad_sequences

    sequences = [[5, 6, 7], [], [-1, -1, 8, 9, 10]]
    ids, mask = pad_sequences(sequences, 0, "left")
    assert ids.tolist() == [[0, 0, 5, 6, 7], [0, 0, 0, 0, 0], [-1, -1, 8, 9, 10]]
    assert mask.tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    ids, mask = pad_sequences(sequences, 0, "right", length=6)
    assert ids.tolist() == [[5, 6, 7, 0, 0, 0], [0] * 6, [-1, -1, 8, 9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1, 0, 0, 0], [0] * 6, [1, 1, 1, 1, 1, 0]]
    assert pad_sequences([], 0, "right")[0].shape == (0, 0)


def test_post_process_drops_image_placeholders(tiny_processor):
    out = tiny_processor("<|user|>\n<|image_1|>\nWhat is shown in this image?<|end|>\n", [_photo((1, 2, 3))])
    decoded = tiny_processor.post_process_image_text_to_text(out["input_ids"])
    assert decoded == tiny_processor.batch_decode(out["input_ids"], skip_special_tokens=True)
    assert "What is shown in this image?" in decoded[0]


def test_trl_vision_collator_runs_on_the_processor(tiny_processor):
    # TRL's own VLM collator (the `sft_vlm.py` flow) calls `apply_chat_template(tokenize=True)` with the row's images
    # placed into the structured content; it gets what our processor gives for the flattened prompt. It also passes
    # `add_special_tokens=False`, which drops the BOS the official layout puts at the start and after every image:
    # phi3v's own collators keep it.
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from phi3v.modeling.chat_format import to_phi3v_messages

    image = _photo((120, 30, 60))
    rows = [
        {
            "images": [image],
            "messages": [{"role": "user", "content": "What is it?"}, {"role": "assistant", "content": "A bag."}],
        },
        {"images": [], "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
    ]
    prompts = [
        tiny_processor.apply_chat_template(to_phi3v_messages(row["messages"], num_images=len(row["images"])))
        for row in rows
    ]
    expected = tiny_processor(prompts, [row["images"] for row in rows], add_special_tokens=False)
    batch = DataCollatorForVisionLanguageModeling(tiny_processor)([dict(row) for row in rows])
    for key in expected:
        assert torch.equal(batch[key], expected[key]), key


def test_open_image_reads_paths_and_base64_and_names_bad_sources(tmp_path):
    import base64
    import io

    from phi3v.modeling.processing_phi3_v import open_image

    image = Image.new("LA", (20, 10), (40, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    (tmp_path / "a.png").write_bytes(buffer.getvalue())
    for source in (str(tmp_path / "a.png"), encoded, f"data:image/png;base64,{encoded}"):
        opened = open_image(source)
        assert opened.mode == "LA" and opened.size == (20, 10)  # not converted: the processor converts
    assert open_image(image) is image
    with pytest.raises(ValueError, match="not an http"):
        open_image("no/such/file.png")
