"""Phi-3-V's chat format: image tags, flattening TRL's structured messages, the prompt renderer, the stop tokens."""

import json

import pytest
from transformers import AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v.modeling.chat_format import (
    CHAT_TEMPLATE,
    build_prompt,
    image_tag,
    image_tags,
    stop_token_ids,
    to_phi3v_messages,
)

from ..conftest import hub_files


def test_image_tags():
    assert image_tag(2) == "<|image_2|>"
    assert image_tags(0) == ""
    assert image_tags(1) == "<|image_1|>\n"
    assert image_tags(3) == "<|image_1|><|image_2|><|image_3|>\n"


def test_structured_messages_flatten_to_tags_and_untagged_rows_get_them_first():
    structured = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A scarf."}]},
    ]
    assert to_phi3v_messages(structured) == [
        {"role": "user", "content": "<|image_1|>\nWhat is it?"},
        {"role": "assistant", "content": "A scarf."},
    ]
    untagged = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Same?"}]
    assert to_phi3v_messages(untagged, num_images=2)[1]["content"] == "<|image_1|>\n<|image_2|>\nSame?"
    with pytest.raises(ValueError, match="no user turn"):
        to_phi3v_messages([{"role": "assistant", "content": "A scarf."}], num_images=1)
    with pytest.raises(ValueError, match="Unsupported content part type 'audio'"):
        to_phi3v_messages([{"role": "user", "content": [{"type": "audio"}]}])


def test_one_renderer_for_generation_prompts_and_whole_conversations(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    messages = [{"role": "user", "content": "<|image_1|>What is it?"}, {"role": "assistant", "content": "A scarf."}]
    assert build_prompt(processor, messages[:1]) == "<|user|>\n<|image_1|>What is it?<|end|>\n<|assistant|>\n"
    assert build_prompt(processor, messages, add_generation_prompt=False) == (
        "<|user|>\n<|image_1|>What is it?<|end|>\n<|assistant|>\nA scarf.<|end|>\n"
    )
    tokenizer = processor.tokenizer
    assert stop_token_ids(tokenizer) == tokenizer.convert_tokens_to_ids(["<|end|>", "<|endoftext|>"])
    assert json.loads((tiny_checkpoint / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE


def test_the_template_is_the_official_checkpoints_own():
    official = json.loads((hub_files("Phi-3-vision-128k-instruct") / "tokenizer_config.json").read_text())
    assert official["chat_template"] == CHAT_TEMPLATE
