"""What a row must hold to be trained on or asked, checked where it is read: by the converters, by `as_conversation`
(so by both collators and every evaluation), and over every row before a model loads (`phi3v.data.validation`).

Each check raises `BadRow` naming the field at fault as the dataset spells it (`messages[0].role`, `texts[2].assistant`,
`conversations[1].from`, `images[1]`) and the problem. The rules, for every layout once it is a conversation:

- **Structure.** A message is a `{role, content}` mapping; `content` is a string or a list of typed parts
  (`{"type": "text", "text": str}` or `{"type": "image"}`); text is a string, never `None`, a number or a mapping.
- **Roles.** TRL's layouts use `system`, `user` and `assistant` only; LLaVA's `human` and `gpt` are mapped by the LLaVA
  layout alone (anywhere else they are refused: the model would read a `<|human|>` turn it never sees at inference).
- **Order.** An optional system turn first, then user and assistant turns alternating from a user turn, ending with
  an assistant answer; a prompt (prompt/completion and preference rows) ends with the user turn its completion answers.
- **Text.** No empty or blank answer, question (unless it shows an image) or system turn; no chat token the template
  writes itself (`<|end|>`, `<|user|>`, ...), no LLaVA `<image>` marker outside the LLaVA layout, no malformed tag.
- **Images.** Every image is present (no `None` in a list) and of a form the loaders open; the turns name the row's n
  images as `<|image_1|>` .. `<|image_n|>`, each once, in order, in user or system turns (typed image parts and rows
  without tags are numbered this way first).
"""

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from phi3v.errors import BadRow
from phi3v.modeling.chat_format import END_OF_TEXT, END_OF_TURN, IMAGE_TAG


ROLES = ("system", "user", "assistant")
LLAVA_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}  # LLaVA JSON's `from` names
LLAVA_IMAGE_TOKEN = "<image>"
CHAT_TOKENS = (END_OF_TURN, END_OF_TEXT, "<|user|>", "<|assistant|>", "<|system|>")
_TAG_LIKE = re.compile(r"<\|\s*image[^<>]*?\|>", re.IGNORECASE)  # anything written like an image tag


def describe(value) -> str:
    """A value's type and its start, for a message: `int 3`, `dict {'a': 1}`."""
    return f"{type(value).__name__} {str(value)[:60]!r}"


def text_value(value, field: str, what: str = "text") -> str:
    """`value` when it is a string; otherwise `BadRow` saying it is missing or of the wrong type."""
    if value is None:
        raise BadRow(field, f"{what} is missing (None)")
    if not isinstance(value, str):
        raise BadRow(field, f"{what} must be a string, got {describe(value)}")
    return value


def list_value(value, field: str, what: str) -> list:
    """`value` as a list when it is a sequence (not a string or a mapping); otherwise `BadRow`."""
    if value is None:
        raise BadRow(field, f"{what} is missing (None)")
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise BadRow(field, f"{what} must be a list, got {describe(value)}")
    return list(value)


def check_image_value(value, field: str) -> None:
    """Refuses what no image loader of this project opens: `None`, a URL (nothing is downloaded while training or
    evaluating), an empty path, a cell with neither bytes nor a path, or any other type."""
    if value is None:
        raise BadRow(field, "the image is missing (None)")
    if isinstance(value, Image.Image | Path):
        return
    if isinstance(value, str):
        if not value.strip():
            raise BadRow(field, "the image path is empty")
        if value.lower().startswith(("http://", "https://")):
            raise BadRow(
                field,
                f"{value[:80]!r} is a URL: training and evaluation read the images a row carries or local files, and "
                "download nothing; fetch the images first (scripts/prepare_dataset.py does for a catalogue)",
            )
        return
    if isinstance(value, Mapping) and {"bytes", "path"} & value.keys():
        data, path = value.get("bytes"), value.get("path")
        if (isinstance(data, bytes) and data) or (data is None and isinstance(path, str) and path.strip()):
            return
        raise BadRow(field, f"an image cell needs its bytes or a path, got {describe(value)}")
    raise BadRow(field, f"not an image: {describe(value)}")


def check_messages(messages, column: str) -> list[Mapping]:
    """The structure of TRL messages (`{role, content}` mappings, content a string or typed parts), roles included.

    Args:
        messages: the column's value.
        column (`str`): its name (`messages`, `prompt`, `completion`, `chosen`, `rejected`), for the fields.

    Returns:
        `list[Mapping]`: the messages.
    """
    messages = list_value(messages, column, f"`{column}` (a list of {{role, content}} messages)")
    for index, message in enumerate(messages):
        field = f"{column}[{index}]"
        if not isinstance(message, Mapping):
            raise BadRow(field, f"a message must be a {{role, content}} mapping, got {describe(message)}")
        if "role" not in message and {"from", "value"} <= message.keys():
            raise BadRow(
                field,
                "a LLaVA turn ({from, value}); write {role, content} messages, or set dataset_format: llava for "
                "rows of `image` + `conversations`",
            )
        role = text_value(message.get("role"), f"{field}.role", "the role")
        if role not in ROLES:
            if role in LLAVA_ROLES:  # `system` is among ROLES: here only LLaVA's `human` and `gpt`
                problem = (
                    f"role {role!r} is LLaVA's name for {LLAVA_ROLES[role]!r}: TRL's layouts use {list(ROLES)}, and "
                    f"the model would learn a <|{role}|> turn it never sees at inference. Rename the roles, or set "
                    "dataset_format: llava for rows of `image` + `conversations` with `from`/`value`"
                )
            else:
                problem = f"unknown role {role!r}; Phi-3-V's chat format has {list(ROLES)}"
            raise BadRow(f"{field}.role", problem)
        content = message.get("content")
        if content is None:
            raise BadRow(f"{field}.content", "the content is missing (None)")
        if isinstance(content, str):
            continue
        if isinstance(content, bytes | Mapping) or not isinstance(content, Sequence):
            raise BadRow(
                f"{field}.content", f"content must be a string or a list of typed parts, got {describe(content)}"
            )
        for number, part in enumerate(content):
            part_field = f"{field}.content[{number}]"
            if not isinstance(part, Mapping):
                raise BadRow(part_field, f"a content part must be a {{type, ...}} mapping, got {describe(part)}")
            kind = part.get("type")
            if kind == "text":
                text_value(part.get("text"), f"{part_field}.text", "the text part's text")
            elif kind != "image":
                raise BadRow(
                    f"{part_field}.type", f"unsupported part type {kind!r}; Phi-3-V reads text and image parts"
                )
    return messages


def check_order(roles: Sequence[str], fields: Sequence[str], train_from: int = 0) -> None:
    """Optional system turn first, then user and assistant alternating from a user turn, ending with an answer; with
    `train_from` (the prompt's length), the prompt ends with the user turn the completion answers.

    Args:
        roles (`Sequence[str]`): the turns' roles (TRL's names).
        fields (`Sequence[str]`): each turn's role field, for the message.
        train_from (`int`, *optional*, defaults to 0): where the completion starts (0: not a prompt-completion row).
    """
    start = 1 if roles and roles[0] == "system" else 0
    shown = ", ".join(roles[:8]) + (", ..." if len(roles) > 8 else "")
    rule = f"turns go (system), user, assistant, user, ... (this row: {shown})"
    if train_from and roles[train_from - 1] != "user":
        raise BadRow(
            fields[train_from - 1], f"the prompt must end with the user turn that the completion answers; {rule}"
        )
    for index, role in enumerate(roles[start:], start=start):
        expected = ("user", "assistant")[(index - start) % 2]
        if role == "system":
            raise BadRow(fields[index], f"a system turn after the first turn; the system prompt comes first: {rule}")
        if role != expected:
            where = "comes first" if index == start else f"follows {_a(roles[index - 1])} turn"
            raise BadRow(fields[index], f"{_a(role)} turn {where}, where {_a(expected)} turn belongs: {rule}")
    if "assistant" not in roles:
        raise BadRow(fields[-1], f"no assistant turn: there is no answer to learn or score (this row: {shown})")
    if roles[-1] != "assistant":
        raise BadRow(fields[-1], f"the conversation ends with a {roles[-1]} turn that no answer follows ({shown})")


def _a(role: str) -> str:
    return "an assistant" if role == "assistant" else f"a {role}"


def check_texts(messages: Sequence[Mapping], fields: Sequence[str], num_images: int, image_field: str) -> None:
    """The turns' text (no empty answer or question, no chat token, no stray marker) and their image tags against the
    row's images (see the module docstring).

    Args:
        messages (`Sequence[Mapping]`): `{role, content}` with string content, as `to_phi3v_messages` writes it.
        fields (`Sequence[str]`): each turn's content field.
        num_images (`int`): the row's images.
        image_field (`str`): where the row's images are, for a problem with their number.
    """
    named = []
    for message, field in zip(messages, fields, strict=True):
        role, content = message["role"], message["content"]
        token = next((token for token in CHAT_TOKENS if token in content), None)
        if token is not None:
            raise BadRow(
                field,
                f"holds the chat token {token!r}, which the template writes itself: it would end or open a turn inside the text",
            )
        if LLAVA_IMAGE_TOKEN in content:
            raise BadRow(
                field,
                "holds LLaVA's `<image>` marker, which Phi-3-V reads as plain text: use an image part or <|image_k|>, "
                "or set dataset_format: llava",
            )
        malformed = [tag for tag in _TAG_LIKE.findall(content) if not IMAGE_TAG.fullmatch(tag)]
        if malformed:
            raise BadRow(field, f"malformed image tag {malformed[0]!r}; the k-th image is named <|image_k|>")
        tags = [int(k) for k in IMAGE_TAG.findall(content)]
        if tags and role == "assistant":
            raise BadRow(field, f"an answer names an image (<|image_{tags[0]}|>); images belong in the user's turns")
        text = IMAGE_TAG.sub("", content).strip()
        if not text and role == "assistant":
            raise BadRow(field, "the answer is empty")
        if not text and not tags:
            raise BadRow(
                field, "the question is empty (no text and no image)" if role == "user" else "the turn is empty"
            )
        for k in tags:
            if k in named:
                raise BadRow(field, f"names <|image_{k}|> twice; {_tags_rule(num_images)}")
            if k != len(named) + 1:
                raise BadRow(
                    field, f"names <|image_{k}|> where <|image_{len(named) + 1}|> comes next; {_tags_rule(num_images)}"
                )
            if k > num_images:
                raise BadRow(field, f"names <|image_{k}|>, but {_tags_rule(num_images)}")
            named.append(k)
    if len(named) != num_images:
        raise BadRow(
            image_field,
            f"the turns name {len(named)} image(s) (typed image parts or <|image_k|> tags), but "
            f"{_tags_rule(num_images)}",
        )


def _tags_rule(num_images: int) -> str:
    if not num_images:
        return "the row has no image, so its turns must name none"
    return (
        f"the tags must be exactly <|image_1|>..<|image_{num_images}|>, each once and in order, for its "
        f"{num_images} image(s)"
    )
