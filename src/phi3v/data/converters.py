"""Converters from the dataset layouts people have to TRL's conversational vision form with `<|image_k|>` tags.

Each converter takes one row and returns `{"images": [...], "messages": [{"role": ..., "content": str}, ...]}`, where
the k-th `<|image_k|>` tag in the string contents stands for `images[k - 1]`. Images are passed through as they come
(PIL images, or whatever `datasets` decoded); nothing is re-encoded, and the RGB conversion happens later, in the
processor. Tags follow the Phi-3-V Cookbook's layout: all tags of a turn concatenated, then one newline, then the text
(`"<|image_1|><|image_2|>\\nQuestion"`).
"""

import random
import re
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from phi3v.errors import DataError, MissingDataFileError
from phi3v.modeling.chat_format import image_tag, image_tags


LLAVA_IMAGE_TOKEN = "<image>"
LLAVA_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
DOCVQA_INSTRUCTION = "Answer briefly."


def from_the_cauldron(row: Mapping) -> dict:
    """A `HuggingFaceM4/the_cauldron` row (`images` + `texts: [{user, assistant, source}]`) as one conversation.

    Every QA pair becomes a user/assistant turn, so every answer is trained. The images go on the first user turn as
    `"<|image_1|><|image_2|>\\n" + user`; later turns carry the bare user text, as the Cookbook's NLVR2 script does.

    Args:
        row (`Mapping`): A row with `images` (a list, possibly empty) and `texts` (a non-empty list of dicts with
            `user` and `assistant`; `source` is ignored).

    Returns:
        `dict`: `{"images": row["images"], "messages": [...]}`.

    Raises:
        `ValueError`: when `texts` is empty.
    """
    images = list(row["images"] or [])
    texts = row["texts"]
    if not texts:
        raise DataError("the_cauldron row has no `texts`: there is no question to train on.")
    messages = []
    for turn, text in enumerate(texts):
        prefix = image_tags(len(images)) if turn == 0 else ""
        messages.append({"role": "user", "content": prefix + text["user"]})
        messages.append({"role": "assistant", "content": text["assistant"]})
    return {"images": images, "messages": messages}


def _llava_image_paths(row: Mapping) -> list[str]:
    image = row.get("image")
    if image is None:
        return []
    return [image] if isinstance(image, (str, Path)) else list(image)


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
        `dict`: `{"images": [PIL images, opened lazily], "messages": [...]}`.

    Raises:
        `FileNotFoundError`: naming the row's path when an image file does not exist.
        `ValueError`: when the `<image>` tokens and the images differ in number, or a turn's `from` is unknown.
    """
    paths = _llava_image_paths(row)
    turns = row["conversations"]
    num_tokens = sum(turn["value"].count(LLAVA_IMAGE_TOKEN) for turn in turns)
    if num_tokens and num_tokens != len(paths):
        raise DataError(
            f"LLaVA row {row.get('id', '')!r} has {num_tokens} `<image>` tokens but {len(paths)} images ({paths})."
        )
    unknown = sorted({turn["from"] for turn in turns} - set(LLAVA_ROLES))
    if unknown:
        raise DataError(f"LLaVA row {row.get('id', '')!r}: unknown `from` {unknown}; expected {list(LLAVA_ROLES)}.")

    counter = iter(range(1, num_tokens + 1))
    messages = []
    tags_pending = bool(paths) and not num_tokens
    for turn in turns:
        role = LLAVA_ROLES[turn["from"]]
        content = re.sub(re.escape(LLAVA_IMAGE_TOKEN), lambda _: image_tag(next(counter)), turn["value"])
        if tags_pending and role == "user":
            content, tags_pending = image_tags(len(paths)) + content, False
        messages.append({"role": role, "content": content})
    if tags_pending:
        raise DataError(f"LLaVA row {row.get('id', '')!r} has images but no human turn to show them in.")

    folder = Path(image_folder) if image_folder is not None else Path()
    images = []
    for path in paths:
        resolved = folder / path
        if not resolved.is_file():
            raise MissingDataFileError(
                f"LLaVA row {row.get('id', '')!r}: image {str(path)!r} not found at {resolved}."
            )
        images.append(Image.open(resolved))
    return {"images": images, "messages": messages}


def docvqa_question(row: Mapping) -> str:
    """The English question of a DocVQA row: `query` itself, or `query["en"]` when it is a dict of languages."""
    query = row["query"]
    return query["en"] if isinstance(query, Mapping) else query


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
        `dict`: `{"images": [row["image"]], "messages": [user, assistant]}`.

    Raises:
        `ValueError`: when `answers` is empty.
    """
    answers = list(row["answers"])
    if not answers:
        raise DataError(f"DocVQA row {row.get('id', '')!r} has no answers.")
    answer = rng.choice(answers) if rng is not None else answers[0]
    question = f"{image_tags(1)}{docvqa_question(row)}\n{DOCVQA_INSTRUCTION}"
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"images": [row["image"]], "messages": messages}
