"""transformers' `image-text-to-text` pipeline and Auto classes run the native Phi-3-V (after `import phi3v`)."""

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

import phi3v
from phi3v.modeling.chat_format import to_phi3v_messages


def test_auto_model_for_image_text_to_text_loads_the_native_class(tiny_checkpoint):
    assert isinstance(AutoModelForImageTextToText.from_pretrained(tiny_checkpoint), phi3v.Phi3VForCausalLM)


def test_pipeline_answers_chat_messages_and_text_with_images(tiny_checkpoint):
    generator = pipeline("image-text-to-text", model=str(tiny_checkpoint))
    assert isinstance(generator.model, phi3v.Phi3VForCausalLM)
    image = Image.new("RGB", (90, 60), (180, 40, 40))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "What is shown in this image?"}],
        }
    ]
    chat = generator(text=messages, max_new_tokens=4, generate_kwargs={"do_sample": False})
    answer = chat[0]["generated_text"][-1]
    assert answer["role"] == "assistant" and isinstance(answer["content"], str) and answer["content"]

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    prompt = processor.apply_chat_template(to_phi3v_messages(messages), add_generation_prompt=True)
    plain = generator(
        images=image, text=prompt, max_new_tokens=4, generate_kwargs={"do_sample": False}, return_full_text=False
    )
    # The same prompt and image through both entry points give the same greedy answer, the one `generate` gives.
    assert plain[0]["generated_text"] == answer["content"]
    inputs = processor(prompt, [image])
    ids = generator.model.generate(**inputs, max_new_tokens=4, do_sample=False)[:, inputs["input_ids"].shape[1] :]
    assert processor.batch_decode(ids, skip_special_tokens=True)[0] == answer["content"]
    assert torch.equal(
        inputs["input_ids"],
        processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ],
    )
