"""Converters from the dataset layouts people have to TRL's conversational vision form with `<|image_k|>` tags.

Each converter takes one row and returns `{"images": [...], "messages": [{"role": ..., "content": str}, ...]}`, where
the k-th `<|image_k|>` tag in the string contents stands for `images[k - 1]`. Images are passed through as they come
(PIL images, or whatever `datasets` decoded); nothing is re-encoded, and the RGB conversion happens later, in the
processor. Tags follow the Phi-3-V Cookbook's layout: all tags of a turn concatenated, then one newline, then the text
(`"<|image_1|><|image_2|>\\nQuestion"`).
"""

import random
from collections.abc import Mapping
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from phi3v.errors import BadRow, MissingDataFileError
from phi3v.modeling.chat_format import image_tag, image_tags

from .conversation import SourcedRow
from .row_checks import LLAVA_IMAGE_TOKEN, LLAVA_ROLES, describe, list_value, text_value


DOCVQA_INSTRUCTION = "Answer briefly."


def from_the_cauldron(row: Mapping) -> dict:
    """A `HuggingFaceM4/the_cauldron` row (`images` + `texts: [{user, assistant, source}]`) as one conversation.

    Every QA pair becomes a user/assistant turn, so every answer is trained. The images go on the first user turn as
    `"<|image_1|><|image_2|>\\n" + user`; later turns carry the bare user text, as the Cookbook's NLVR2 script does.

    Args:
        row (`Mapping`): A row with `images` (a list, possibly empty) and `texts` (a non-empty list of dicts with
            `user` and `assistant`; `source` is ignored).

    Returns:
        `dict`: `{"images": row["images"], "messages": [...]}`, a [`SourcedRow`] naming where each message comes
        from (`texts[0].user`).

    Raises:
        `BadRow`: when `texts` is empty, or a question or answer is not a string.
    """
    images = [] if row.get("images") is None else list_value(row["images"], "images", "`images`")
    texts = list_value(row.get("texts"), "texts", "`texts`")
    if not texts:
        raise BadRow("texts", "the_cauldron row has no `texts`: there is no question to train on.")
    messages, fields = [], []
    for turn, text in enumerate(texts):
        field = f"texts[{turn}]"
        if not isinstance(text, Mapping):
            raise BadRow(field, f"a turn must be a {{user, assistant}} mapping, got {describe(text)}")
        prefix = image_tags(len(images)) if turn == 0 else ""
        user = text_value(text.get("user"), f"{field}.user", "the question")
        assistant = text_value(text.get("assistant"), f"{field}.assistant", "the answer")
        messages += [{"role": "user", "content": prefix + user}, {"role": "assistant", "content": assistant}]
        fields += [(field, f"{field}.user"), (field, f"{field}.assistant")]
    return SourcedRow(images, messages, fields)


def _llava_image_paths(row: Mapping) -> tuple[list, list[str]]:
    image = row.get("image")
    if image is None:
        return [], []
    if isinstance(image, str | Path):
        return [image], ["image"]
    paths = list_value(image, "image", "`image` (a path or a list of paths)")
    for index, path in enumerate(paths):
        if not isinstance(path, str | Path) or not str(path).strip():
            raise BadRow(f"image[{index}]", f"an image path must be a non-empty string, got {describe(path)}")
    return paths, [f"image[{index}]" for index in range(len(paths))]


def from_llava(row: Mapping, image_folder: str | Path | None = None) -> dict:
    """A LLaVA JSON row (`image` path(s) + `conversations: [{from, value}]` with `<image>` tokens) as one conversation.

    The k-th `<image>` token (counted over the whole conversation) becomes `<|image_k|>` in place, so LLaVA's usual
    `"<image>\\nQuestion"` becomes the Cookbook's `"<|image_1|>\\nQuestion"`. A row with images but no `<image>` token
    gets the tags, then a newline, at the start of its first human turn. A row without `image` is text only.

    Args:
        row (`Mapping`): A row with `conversations` (`from` is `human`, `gpt` or `system`) and, optionally, `image`
            (one path or a list of paths).
        image_folder (`str` or `Path`, *optional*):
            Folder that relative image paths are resolved against (scripts pass the folder of the JSON file); `None`
            resolves them against the working directory.

    Returns:
        `dict`: `{"images": [PIL images, opened lazily], "messages": [...]}` (a [`SourcedRow`]).

    Raises:
        `MissingDataFileError`: naming the row's path when an image file does not exist.
        `BadRow`: when the `<image>` tokens and the images differ in number, a turn's `from` is unknown, or a turn or
            an image is malformed.
    """
    paths, image_fields = _llava_image_paths(row)
    turns = list_value(row.get("conversations"), "conversations", "`conversations`")
    speakers, values = [], []
    for index, turn in enumerate(turns):
        field = f"conversations[{index}]"
        if not isinstance(turn, Mapping):
            raise BadRow(field, f"a turn must be a {{from, value}} mapping, got {describe(turn)}")
        speakers.append(text_value(turn.get("from"), f"{field}.from", "the speaker (`from`)"))
        values.append(text_value(turn.get("value"), f"{field}.value", "the text (`value`)"))
    if not turns:
        raise BadRow("conversations", "the conversation has no turns")
    unknown = sorted(set(speakers) - set(LLAVA_ROLES))
    if unknown:
        index = next(index for index, speaker in enumerate(speakers) if speaker in unknown)
        raise BadRow(f"conversations[{index}].from", f"unknown `from` {unknown}; expected {list(LLAVA_ROLES)}.")
    num_tokens = sum(value.count(LLAVA_IMAGE_TOKEN) for value in values)
    if num_tokens and num_tokens != len(paths):
        raise BadRow(
            "conversations", f"{num_tokens} `<image>` tokens but {len(paths)} images ({list(map(str, paths))})."
        )

    counter = iter(range(1, num_tokens + 1))
    messages = []
    tags_pending = bool(paths) and not num_tokens
    for speaker, value in zip(speakers, values, strict=True):
        role = LLAVA_ROLES[speaker]
        content = _replace_markers(value, counter)
        if tags_pending and role == "user":
            content, tags_pending = image_tags(len(paths)) + content, False
        messages.append({"role": role, "content": content})
    fields = [(f"conversations[{index}].from", f"conversations[{index}].value") for index in range(len(turns))]

    folder = Path(image_folder) if image_folder is not None else Path()
    images = []
    for path, field in zip(paths, image_fields, strict=True):
        resolved = folder / path
        if not resolved.is_file():
            raise MissingDataFileError(field, f"image {str(path)!r} not found at {resolved}.")
        try:
            images.append(Image.open(resolved))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise BadRow(field, f"unreadable image {str(path)!r}: {error}") from None
    return SourcedRow(images, messages, fields, image_fields)


def _replace_markers(value: str, counter) -> str:
    """`value` with each LLaVA `<image>` marker replaced by the next `<|image_k|>` tag."""
    pieces = value.split(LLAVA_IMAGE_TOKEN)
    return pieces[0] + "".join(image_tag(next(counter)) + piece for piece in pieces[1:])


def docvqa_question(row: Mapping) -> str:
    """The English question of a DocVQA row: `query` itself, or `query["en"]` when it is a dict of languages.

    Raises:
        `BadRow`: when the question is missing or not a string.
    """
    query = row.get("query")
    if isinstance(query, Mapping):
        return text_value(query.get("en"), "query.en", "the English question")
    return text_value(query, "query", "the question")


def docvqa_answers(row: Mapping) -> list[str]:
    """The answers of a DocVQA row, each a non-empty string.

    Raises:
        `BadRow`: when `answers` is empty or not a list, or an answer is not a string or is blank.
    """
    answers = list_value(row.get("answers"), "answers", "`answers`")
    if not answers:
        raise BadRow("answers", "the row has no answers: there is nothing to learn or score")
    for index, answer in enumerate(answers):
        if not text_value(answer, f"answers[{index}]", "an answer").strip():
            raise BadRow(f"answers[{index}]", "the answer is empty")
    return answers


def from_docvqa(row: Mapping, rng: random.Random | None = None) -> dict:
    """A DocVQA row (`nielsr/docvqa_1200_examples`: `image` + `query` + `answers`) as one user/assistant exchange.

    The user turn is the Cookbook's DocVQA evaluation prompt, `"<|image_1|>\\n{query['en']}\\nAnswer briefly."`. The
    answer is `answers[0]`; the Cookbook's mini-train split draws `random.choice(answers)` at every visit instead,
    which `rng` reproduces.

    Args:
        row (`Mapping`): A row with `image`, `query` (a string or a dict of languages; `en` is used) and `answers`
            (a non-empty list of strings). Other columns (`id`, `words`, `bounding_boxes`, `answer`) are ignored.
        rng (`random.Random`, *optional*): Draws the answer among `answers` when given.

    Returns:
        `dict`: `{"images": [row["image"]], "messages": [user, assistant]}` (a [`SourcedRow`]).

    Raises:
        `BadRow`: when the image is missing, `answers` is empty, or the question or an answer is not a string.
    """
    answers = docvqa_answers(row)
    question = docvqa_question(row)
    if row.get("image") is None:
        raise BadRow("image", "the document image is missing (None)")
    index = rng.randrange(len(answers)) if rng is not None else 0
    question_field = "query.en" if isinstance(row["query"], Mapping) else "query"
    messages = [
        {"role": "user", "content": f"{image_tags(1)}{question}\n{DOCVQA_INSTRUCTION}"},
        {"role": "assistant", "content": answers[index]},
    ]
    fields = [(question_field, question_field), ("answers", f"answers[{index}]")]
    return SourcedRow([row["image"]], messages, fields, ["image"])
