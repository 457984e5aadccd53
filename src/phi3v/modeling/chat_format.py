"""Phi-3-V's chat format, in one place: image tags, the flattening of TRL's structured messages, the one prompt
renderer, and the tokens that end an answer.

The official template (`phi3v_chat.jinja`, written into every saved tokenizer) renders string content only:
`<|user|>\\n{content}<|end|>\\n` per turn, then `<|assistant|>\\n` for a generation prompt. Images are named in the text by
`<|image_k|>`, where k counts the sample's images from 1; the processor replaces each tag by that image's placeholder
tokens.

Example:

```python
>>> messages = to_phi3v_messages([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}])
>>> messages
[{'role': 'user', 'content': '<|image_1|>\\nHi'}]
>>> build_prompt(processor, messages)
'<|user|>\\n<|image_1|>\\nHi<|end|>\\n<|assistant|>\\n'
```
"""

import re
from pathlib import Path


CHAT_TEMPLATE = (Path(__file__).resolve().parent / "phi3v_chat.jinja").read_text()
IMAGE_TAG = re.compile(r"<\|image_(\d+)\|>")
END_OF_TURN = "<|end|>"
END_OF_TEXT = "<|endoftext|>"


def image_tag(k: int) -> str:
    """The tag of the k-th image of a sample, `<|image_k|>` (k counts from 1)."""
    return f"<|image_{k}|>"


def image_tags(num_images: int) -> str:
    """The Cookbook's tag prefix for `num_images` images: `"<|image_1|><|image_2|>\\n"`, or `""` for none.

    Args:
        num_images (`int`): How many images the turn shows.
    """
    return "".join(image_tag(k) for k in range(1, num_images + 1)) + "\n" if num_images else ""


def to_phi3v_messages(messages: list[dict], num_images: int = 0) -> list[dict]:
    """Messages with string content and `<|image_k|>` tags, the only form the official chat template renders.

    TRL's structured content (`[{"type": "image"}, {"type": "text", "text": "..."}]`) is flattened part by part: the
    k-th image part of the conversation becomes `<|image_k|>` followed by a newline (the model cards' layout), text parts
    are kept as they are. String content is kept as it is. When the conversation names no image at all but the row has
    `num_images` images, their tags are put at the start of the first user turn, as TRL does for string prompts.

    Args:
        messages (`list[dict]`): `{"role", "content"}` messages; content is a string or a list of typed parts.
        num_images (`int`, *optional*, defaults to 0): images of the row, for conversations that do not place them.

    Returns:
        `list[dict]`: new `{"role", "content"}` messages with string content.
    """
    flattened, image_index = [], 0
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            pieces = []
            for part in content:
                if part["type"] == "image":
                    image_index += 1
                    pieces.append(image_tag(image_index) + "\n")
                elif part["type"] == "text":
                    pieces.append(part["text"])
                else:
                    raise ValueError(f"Unsupported content part type {part['type']!r}; Phi-3-V reads text and images.")
            content = "".join(pieces)
        flattened.append({"role": message["role"], "content": content})
    if num_images and not any(IMAGE_TAG.search(message["content"]) for message in flattened):
        first_user = next((m for m in flattened if m["role"] == "user"), None)
        if first_user is None:
            raise ValueError(f"The row has {num_images} image(s) but no user turn to place them in.")
        first_user["content"] = "".join(image_tag(k) + "\n" for k in range(1, num_images + 1)) + first_user["content"]
    return flattened


def build_prompt(processor, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The text the model reads for a conversation, rendered by the processor's chat template.

    Args:
        processor ([`Phi3VProcessor`]): its chat template renders the text (structured content is flattened first).
        messages (`list[dict]`): `{"role", "content"}` messages, content with `<|image_k|>` tags.
        add_generation_prompt (`bool`, *optional*, defaults to `True`): end with `<|assistant|>`, the prompt of a
            generation (the conversation then ends with a user turn); `False` renders the conversation as it is, its
            answers included, as training reads it.
    """
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def stop_token_ids(tokenizer) -> list[int]:
    """Generation stops on `<|end|>` (turn end) and `<|endoftext|>`; the checkpoints' own eos (2) is never emitted."""
    return [tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.convert_tokens_to_ids(END_OF_TEXT)]
