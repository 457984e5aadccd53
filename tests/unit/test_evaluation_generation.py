"""Batched greedy generation: same answers as one at a time, left padding, KV cache, both stop tokens, sharding."""

import numpy as np
import pytest
from accelerate import Accelerator
from PIL import Image

from phi3v.inference.generation import generate_answers, generate_answers_distributed, grey_image, grey_images
from phi3v.inference.loading import load_for_inference
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks.catalogue import prompt_messages

from ..evaluation_helpers import one_torch_thread


MAX_NEW_TOKENS = 12


def build_prompts(processor, num_prompts, question="What is shown in this image?"):
    return [build_prompt(processor, prompt_messages(question))] * num_prompts


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def model_and_processor(tiny_checkpoint):
    return load_for_inference(tiny_checkpoint, dtype="float32")


@pytest.fixture(scope="module")
def images():
    """Random-noise pictures of varied sizes and aspect ratios, so prompts have different lengths in a batch."""
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (300, 120), (90, 310), (200, 200), (56, 400), (333, 250), (128, 96), (400, 400), (75, 150)]
    return [[Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))] for w, h in sizes]


@pytest.fixture(scope="module")
def one_at_a_time(model_and_processor, images):
    model, processor = model_and_processor
    prompts = build_prompts(processor, len(images))
    return generate_answers(
        model, processor, prompts, images, batch_size=1, max_new_tokens=MAX_NEW_TOKENS, show_progress=False
    )


def test_prompt_is_the_training_prompt(model_and_processor):
    _, processor = model_and_processor
    assert build_prompts(processor, 1) == ["<|user|>\n<|image_1|>What is shown in this image?<|end|>\n<|assistant|>\n"]
    assert (
        build_prompts(processor, 3, question="Describe the product.")
        == ["<|user|>\n<|image_1|>Describe the product.<|end|>\n<|assistant|>\n"] * 3
    )


def test_answers_vary_between_images(one_at_a_time):
    # Otherwise the batch-vs-single comparison below would prove nothing.
    assert len(set(one_at_a_time)) >= 4


@pytest.mark.parametrize("batch_size", [2, 4, 9])
def test_batched_answers_equal_one_at_a_time(model_and_processor, images, one_at_a_time, batch_size):
    model, processor = model_and_processor
    prompts = build_prompts(processor, len(images))
    batched = generate_answers(
        model, processor, prompts, images, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS, show_progress=False
    )
    assert batched == one_at_a_time


def test_generate_call_is_greedy_left_padded_cached_and_stops_on_both_tokens(model_and_processor, images, monkeypatch):
    model, processor = model_and_processor
    tokenizer = processor.tokenizer
    calls = []
    original_generate = model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return original_generate(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    generate_answers(model, processor, build_prompts(processor, 3), images[:3], batch_size=3, show_progress=False)
    (kwargs,) = calls
    assert kwargs["do_sample"] is False and kwargs["use_cache"] is True
    assert kwargs["eos_token_id"] == [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.eos_token_id]
    assert kwargs["pad_token_id"] == tokenizer.pad_token_id
    # Left padding: every prompt ends in the last column, the shorter ones start with masked pads.
    mask = kwargs["attention_mask"]
    assert mask[:, -1].all() and not mask[:, 0].all()


def test_answers_hold_no_special_tokens(one_at_a_time):
    assert not any("<|" in answer or "<s>" in answer for answer in one_at_a_time)


def test_distributed_generation_with_one_process_is_plain_generation(model_and_processor, images, one_at_a_time):
    model, processor = model_and_processor
    prompts = build_prompts(processor, len(images))
    answers = generate_answers_distributed(
        Accelerator(cpu=True), model, processor, prompts, images, batch_size=4, max_new_tokens=MAX_NEW_TOKENS
    )
    assert answers == one_at_a_time


def test_prompts_with_several_images_or_none_batch_like_one_at_a_time(model_and_processor, images):
    model, processor = model_and_processor
    conversations = [
        ([{"role": "user", "content": "<|image_1|><|image_2|>\nCompare."}], [images[0][0], images[1][0]]),
        ([{"role": "user", "content": "No picture here."}], []),
        ([{"role": "user", "content": "<|image_1|>\nAnd this?"}], images[2]),
        (
            [
                {"role": "user", "content": "A"},
                {"role": "assistant", "content": "B"},
                {"role": "user", "content": "C"},
            ],
            [],
        ),
    ]
    prompts = [build_prompt(processor, messages) for messages, _ in conversations]
    samples = [sample for _, sample in conversations]
    kwargs = {"max_new_tokens": MAX_NEW_TOKENS, "show_progress": False}
    alone = generate_answers(model, processor, prompts, samples, batch_size=1, **kwargs)
    assert generate_answers(model, processor, prompts, samples, batch_size=4, **kwargs) == alone
    assert [len(sample) for sample in grey_images(samples)] == [2, 0, 1, 0]


def test_grey_image_is_a_plain_square():
    image = grey_image()
    assert image.size == (336, 336) and image.mode == "RGB"
    assert image.getextrema() == ((128, 128), (128, 128), (128, 128))


def test_mismatched_prompts_and_images_fail(model_and_processor, images):
    model, processor = model_and_processor
    with pytest.raises(ValueError, match="2 prompts but 3 images"):
        generate_answers(model, processor, build_prompts(processor, 2), images[:3], show_progress=False)
