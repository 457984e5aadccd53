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
    {'role': 'assistant', 'content': 'A scarf.'}], train_from=0, image_fields=['images[0]'])
```
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from phi3v.errors import BadRow, DataError
from phi3v.modeling.chat_format import to_phi3v_messages

from .row_checks import check_image_value, check_messages, check_order, check_texts, list_value


PREFERENCE_SIDES = ("chosen", "rejected")


@dataclass
class Conversation:
    """One row, ready for the chat template.

    Args:
        images (`list`): the row's images in tag order (decoded, undecoded dataset cells, or paths).
        messages (`list[dict]`): `{"role", "content"}` messages with string content and `<|image_k|>` tags.
        train_from (`int`, *optional*, defaults to 0): assistant turns at or after this message index are trained
            (the length of the prompt for prompt-completion rows).
        image_fields (`list[str]`, *optional*): where each image is in the row (`images[0]`, `image`), one per image.
    """

    images: list
    messages: list[dict]
    train_from: int = 0
    image_fields: list[str] = field(default_factory=list)

    def eval_split(self) -> tuple[list[dict], str]:
        """The conversation before its last assistant turn (what the model is asked) and that turn's text."""
        last = max((i for i, m in enumerate(self.messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise DataError(f"The conversation has no assistant turn to evaluate: {self.messages}")
        return self.messages[:last], self.messages[last]["content"]


class SourcedRow(dict):
    """A converter's row in TRL's format (`images`, `messages`) that also says where each message and image is in the
    dataset's own row, so a problem names the dataset's field (`texts[0].assistant`, `conversations[1].from`).

    Args:
        images (`list`): the row's images.
        messages (`list[dict]`): `{role, content}` messages, string content.
        fields (`list[tuple[str, str]]`): each message's role and content fields in the dataset's row.
        image_fields (`list[str]`, *optional*): each image's field; defaults to `images[k]`.
    """

    def __init__(self, images: list, messages: list[dict], fields: list[tuple[str, str]], image_fields=None):
        super().__init__(images=images, messages=messages)
        self.fields = fields
        self.image_fields = image_fields


def images_and_fields(row: Mapping) -> tuple[list, list[str]]:
    """The images of a row and where each is: `images` (a list, possibly empty or `None`) or `image` (one image or
    `None`); without either, the images that the messages' `{"type": "image", "image": ...}` parts carry themselves.

    Raises:
        `BadRow`: for a missing image in a list (`None`), or a value no image loader opens.
    """
    if "images" in row:
        if row["images"] is None:
            return [], []
        images = list_value(row["images"], "images", "`images`")
        fields = [f"images[{index}]" for index in range(len(images))]
    elif "image" in row:
        images, fields = ([], []) if row["image"] is None else ([row["image"]], ["image"])
    else:
        images, fields = [], []
        for column in ("messages", "prompt", "completion"):
            for index, turn in enumerate(row.get(column) or []):
                content = turn.get("content") if isinstance(turn, Mapping) else None
                for number, part in enumerate(content if isinstance(content, list) else []):
                    if isinstance(part, Mapping) and part.get("type") == "image" and part.get("image") is not None:
                        images.append(part["image"])
                        fields.append(f"{column}[{index}].content[{number}].image")
    for image, image_field in zip(images, fields, strict=True):
        check_image_value(image, image_field)
    return images, fields


def checked_conversation(
    row: Mapping, messages: Sequence[Mapping], fields: Sequence[tuple[str, str]], train_from: int = 0
) -> Conversation:
    """The conversation of `messages` (checked TRL messages) with the row's images, after the checks of
    `phi3v.data.row_checks`: turn order, then (flattened) text and image tags.

    Args:
        row (`Mapping`): the row, for its images (and, from a converter, where they are: [`SourcedRow`]).
        messages (`Sequence[Mapping]`): its messages, structure checked (`check_messages`).
        fields (`Sequence[tuple[str, str]]`): each message's role and content fields.
        train_from (`int`, *optional*, defaults to 0): the prompt's length for prompt-completion rows.
    """
    images, image_fields = images_and_fields(row)
    image_fields = list(getattr(row, "image_fields", None) or image_fields)
    check_order([message["role"] for message in messages], [role for role, _ in fields], train_from)
    flattened = to_phi3v_messages(list(messages), len(images))
    image_field = "images" if "images" in row else "image" if "image" in row else "messages"
    if image_fields:
        image_field = image_fields[0].split("[")[0]
    check_texts(flattened, [content for _, content in fields], len(images), image_field)
    return Conversation(images, flattened, train_from, image_fields)


def _fields(column: str, count: int, offset: int = 0) -> list[tuple[str, str]]:
    return [(f"{column}[{index}].role", f"{column}[{index}].content") for index in range(offset, offset + count)]


def _prompt(row: Mapping) -> list[Mapping]:
    if isinstance(row["prompt"], str):
        raise BadRow(
            "prompt",
            "Phi-3-V trains on conversational prompt/completion rows (lists of {role, content} messages); got a "
            "plain-text prompt. Wrap it: prompt=[{'role': 'user', 'content': ...}].",
        )
    prompt = check_messages(row["prompt"], "prompt")
    if not prompt:
        raise BadRow("prompt", "the prompt has no turns; it ends with the user's question")
    return prompt


def _answers(row: Mapping, column: str) -> list[Mapping]:
    if isinstance(row[column], str):
        raise BadRow(
            column,
            f"Phi-3-V trains on conversational prompt/completion rows (lists of {{role, content}} messages); got a "
            f"plain-text {column}. Wrap it: {column}=[{{'role': 'assistant', 'content': ...}}].",
        )
    answers = check_messages(row[column], column)
    if not answers:
        raise BadRow(column, f"`{column}` has no turns; it holds the assistant's answer")
    return answers


def as_conversation(row: Mapping) -> Conversation:
    """Reads a row in TRL's conversational vision format (`messages`, or `prompt` + `completion`), checked by the
    rules of `phi3v.data.row_checks`.

    Args:
        row (`Mapping`): the row, with `images` or `image`; a converter's [`SourcedRow`] also says where its
            messages and images are in the dataset's row.

    Raises:
        `BadRow`: naming the field and the problem, for a row that breaks a rule. `DataError`: naming the columns,
            for a row in neither format.
    """
    if "messages" in row:
        messages = check_messages(row["messages"], "messages")
        if not messages:
            raise BadRow("messages", "the conversation has no turns")
        fields = getattr(row, "fields", None) or _fields("messages", len(messages))
        return checked_conversation(row, messages, fields)
    if "prompt" in row and "completion" in row:
        prompt, completion = _prompt(row), _answers(row, "completion")
        fields = _fields("prompt", len(prompt)) + _fields("completion", len(completion))
        return checked_conversation(row, prompt + completion, fields, train_from=len(prompt))
    raise DataError(
        "A row must hold `messages`, or `prompt` and `completion`, in TRL's conversational format; this one has "
        f"columns {sorted(row)}. For another layout set `dataset_format` (the_cauldron, llava, docvqa, catalogue)."
    )


def preference_conversations(row: Mapping) -> dict[str, Conversation]:
    """The chosen and rejected conversations of a preference pair (`images`, `prompt`, `chosen`, `rejected`): the
    prompt ends with a user turn, each side answers it, and the two answers differ.

    Raises:
        `BadRow`: naming the field and the problem.
    """
    prompt = _prompt(row)
    conversations = {}
    for side in PREFERENCE_SIDES:
        answers = _answers(row, side)
        fields = _fields("prompt", len(prompt)) + _fields(side, len(answers))
        conversations[side] = checked_conversation(row, prompt + answers, fields, train_from=len(prompt))
    if conversations["chosen"].messages == conversations["rejected"].messages:
        raise BadRow("rejected", "the same answer as `chosen`: the pair teaches nothing")
    return conversations
