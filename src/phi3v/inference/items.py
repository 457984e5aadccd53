"""What an evaluation asks: each row becomes the conversation before its answer, the row's images, and the reference
answer(s) the generation is scored against.

For a conversational dataset, the asked turn is the last assistant turn and everything before it is the prompt. The
catalogue asks its question about the photo. Images stay undecoded dataset cells until a generation batch needs them.
"""

from collections.abc import Callable, Iterable, Mapping

from phi3v.data.conversation import as_conversation
from phi3v.modeling.chat_format import IMAGE_TAG
from phi3v.tasks.catalogue import AnswerTemplate, prompt_messages


def conversation_items(rows: Iterable[Mapping], to_conversation: Callable[[Mapping], Mapping] | None) -> list[dict]:
    """Evaluation items of conversational rows: `id`, `images` (those the prompt names), `prompt`, `references`.

    Args:
        rows (`Iterable[Mapping]`): the dataset's rows (ideally with undecoded images).
        to_conversation (`Callable`, *optional*): the dataset layout's converter (`phi3v.data.formats`).
    """
    items = []
    for index, row in enumerate(rows):
        conversation = as_conversation(to_conversation(row) if to_conversation is not None else row)
        prompt, reference = conversation.eval_split()
        named = max((int(k) for m in prompt for k in IMAGE_TAG.findall(m["content"])), default=0)
        items.append(
            {
                "id": str(row.get("id", index)),
                "images": conversation.images[:named],
                "prompt": prompt,
                "references": [reference],
            }
        )
    return items


def catalogue_items(rows: Iterable[Mapping], question: str, template: AnswerTemplate) -> list[dict]:
    """Evaluation items of catalogue rows: the question about the photo, and the rendered answer as reference."""
    return [
        {
            "id": str(row.get("product_code", index)),
            "images": [] if row["image"] is None else [row["image"]],
            "prompt": prompt_messages(question, row["image"] is not None),
            "references": [template.render(row)],
        }
        for index, row in enumerate(rows)
    ]


def preference_items(rows: Iterable[Mapping]) -> list[dict]:
    """Evaluation items of preference pairs: the pair's prompt, with the chosen answer as reference."""
    items = []
    for index, row in enumerate(rows):
        chosen = as_conversation({**row, "completion": row["chosen"]})
        prompt, reference = chosen.eval_split()
        items.append(
            {
                "id": str(row.get("product_code", index)),
                "images": chosen.images,
                "prompt": prompt,
                "references": [reference],
            }
        )
    return items
