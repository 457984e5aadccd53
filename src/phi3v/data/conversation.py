"""TRL's conversational vision formats, read into the one form the Phi-3-V encoder takes.

A training row has its images under `images` (a list) or `image` (one image, or `None`), or inside its image parts
(`{"type": "image", "image": ...}`), and either `messages`, or a
conversational `prompt` and `completion` (TRL's prompt-completion format). Content is TRL's list of typed parts
(`[{"type": "image"}, {"type": "text", "text": "..."}]`) or a string with `<|image_k|>` tags, where k counts the row's
images from 1. Rows without images can be mixed with rows with images.

Which assistant turns are trained follows TRL: every assistant turn of `messages`; for prompt-completion rows, the
assistant turns of the completion only.

Example:

```python
>>> as_conversation({"images": [photo], "messages": [
...     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
...     {"role": "assistant", "content": [{"type": "text", "text": "A scarf."}]}]})
Conversation(images=[photo], messages=[{'role': 'user', 'content': '<|image_1|>\\nWhat is it?'},
    {'role': 'assistant', 'content': 'A scarf.'}], train_from=0)
```
"""

from collections.abc import Mapping
from dataclasses import dataclass

from phi3v.errors import DataError
from phi3v.modeling.chat_format import to_phi3v_messages


@dataclass
class Conversation:
    """One row, ready for the chat template.

    Args:
        images (`list`): the row's images in tag order (decoded, undecoded dataset cells, or paths).
        messages (`list[dict]`): `{"role", "content"}` messages with string content and `<|image_k|>` tags.
        train_from (`int`, *optional*, defaults to 0): assistant turns at or after this message index are trained
            (the length of the prompt for prompt-completion rows).
    """

    images: list
    messages: list[dict]
    train_from: int = 0

    def eval_split(self) -> tuple[list[dict], str]:
        """The conversation before its last assistant turn (what the model is asked) and that turn's text."""
        last = max((i for i, m in enumerate(self.messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise DataError(f"The conversation has no assistant turn to evaluate: {self.messages}")
        return self.messages[:last], self.messages[last]["content"]


def row_images(row: Mapping) -> list:
    """The images of a row: `images` (a list, possibly empty) or `image` (one image or `None`); without either, the
    images that the messages' `{"type": "image", "image": ...}` parts carry themselves, in order."""
    if "images" in row:
        return [image for image in (row["images"] or []) if image is not None]
    if "image" in row:
        return [] if row["image"] is None else [row["image"]]
    turns = [*(row.get("messages") or []), *(row.get("prompt") or []), *(row.get("completion") or [])]
    parts = [part for turn in turns if not isinstance(turn["content"], str) for part in turn["content"]]
    return [part["image"] for part in parts if part["type"] == "image" and part.get("image") is not None]


def as_conversation(row: Mapping) -> Conversation:
    """Reads a row in TRL's conversational vision format (`messages`, or `prompt` + `completion`).

    Args:
        row (`Mapping`): the row, with `images` or `image`.

    Raises:
        `ValueError`: naming the columns, for a row in neither format.
    """
    images = row_images(row)
    if "messages" in row:
        return Conversation(images, to_phi3v_messages(list(row["messages"]), len(images)))
    if "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str) or isinstance(completion, str):
            raise DataError(
                "Phi-3-V trains on conversational prompt/completion rows (lists of {role, content} messages); got a "
                "plain-text prompt or completion. Wrap them: prompt=[{'role': 'user', 'content': ...}], "
                "completion=[{'role': 'assistant', 'content': ...}]."
            )
        messages = to_phi3v_messages(list(prompt) + list(completion), len(images))
        return Conversation(images, messages, train_from=len(prompt))
    raise DataError(
        "A row must hold `messages`, or `prompt` and `completion`, in TRL's conversational format; this one has "
        f"columns {sorted(row)}. For another layout set `dataset_format` (the_cauldron, llava, docvqa, catalogue)."
    )
