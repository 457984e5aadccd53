"""The multimodal SFT collator: raw catalogue rows in, a right-padded Phi-3-V batch with answer-only labels out."""

from collections.abc import Mapping

import torch
from transformers import ProcessorMixin

from phi3v.data.formatting import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION, IMAGE_PLACEHOLDER, build_messages


class Phi3VDataCollator:
    r"""
    Collates catalogue rows into a batch for [`Phi3VForCausalLM`]; pass it as `data_collator` to TRL's `SFTTrainer`.

    Each row becomes the conversation of `phi3v.data.build_messages` (image, question, answer) rendered with the
    checkpoint's chat template, exactly as at inference:

        <|user|>\n<|image_1|>{question}<|end|>\n<|assistant|>\n{answer}<|end|>\n

    Features:
        - **Loss on the answer only.** Labels are the answer tokens and the `<|end|>` that closes them, the token
          generation stops on. The prompt (with its image placeholders, which are negative ids) and the template's
          trailing newline are -100, and so is padding. The prompt is tokenised on its own with the processor and
          must be a prefix of the full conversation's tokens, or the collator raises.
        - **Images stay undecoded until here.** Rows come straight from the dataset; the processor turns their images
          into crops. Images of different sizes (and so different crop grids and token counts) batch together, and a
          row whose `image` is `None` is asked the question without an image.
        - **Right padding**, with the attention mask built from lengths (the pad id is also the `<|endoftext|>` id).
        - **No silent truncation.** A row longer than `max_length` raises: drop long rows beforehand with
          `phi3v.training.length_grouping.add_length_column`, which cuts neither images nor answers.

    Args:
        processor ([`Phi3VProcessor`]): the checkpoint's processor (its `num_crops` sets the image resolution).
        question (`str`, *optional*, defaults to `"What is shown in this image?"`): the user's question.
        answer_template (`str`, *optional*, defaults to `phi3v.data.DEFAULT_ANSWER_TEMPLATE`): the answer's template.
        max_length (`int`, *optional*): the longest sequence allowed, in tokens.

    Example:

    ```python
    >>> collator = Phi3VDataCollator(processor)
    >>> batch = collator([dataset["train"][0], dataset["train"][1]])
    >>> sorted(batch)
    ['attention_mask', 'image_sizes', 'input_ids', 'labels', 'pixel_values']
    ```
    """

    def __init__(
        self,
        processor: ProcessorMixin,
        question: str = DEFAULT_QUESTION,
        answer_template: str = DEFAULT_ANSWER_TEMPLATE,
        max_length: int | None = None,
    ):
        self.processor = processor
        self.question = question
        self.answer_template = answer_template
        self.max_length = max_length
        self.end_token_id = processor.tokenizer.convert_tokens_to_ids("<|end|>")

    def conversation(self, row: Mapping, with_answer: bool = True) -> str:
        """The chat-template text of a row; without the answer, it ends with the generation prompt `<|assistant|>\\n`."""
        messages = build_messages(row, self.question, self.answer_template, with_answer=with_answer)
        if row["image"] is None:
            messages[0]["content"] = messages[0]["content"].replace(IMAGE_PLACEHOLDER, "")
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=not with_answer)

    def sequence_length(self, row: Mapping) -> int:
        """Tokens of a row's conversation, image placeholders included, from `image_width`/`image_height` (the image
        is not decoded)."""
        counts = []
        if row["image"] is not None:
            counts = [self.processor.image_processor.num_image_tokens(row["image_width"], row["image_height"])]
        return len(self.processor.tokenize_with_images(self.conversation(row), counts))

    def __call__(self, rows: list[Mapping]) -> dict[str, torch.Tensor]:
        texts = [self.conversation(row) for row in rows]
        images = [[] if row["image"] is None else [row["image"]] for row in rows]
        batch = self.processor(texts, images=images, padding_side="right")
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            raise ValueError(
                f"A batch holds a {input_ids.shape[1]}-token sample, over max_length={self.max_length}; truncating "
                "it would cut its image or answer. Filter the dataset with `add_length_column(..., max_length)`, "
                "raise `max_length` or lower `num_crops`."
            )
        labels = torch.full_like(input_ids, -100)
        for i, row in enumerate(rows):
            image_token_counts = [int((input_ids[i] < 0).sum())] if row["image"] is not None else []
            prompt = self.processor.tokenize_with_images(self.conversation(row, with_answer=False), image_token_counts)
            length = int(attention_mask[i].sum())
            end = answer_end(prompt, input_ids[i, :length].tolist(), self.end_token_id, texts[i])
            labels[i, len(prompt) : end] = input_ids[i, len(prompt) : end]
        batch["labels"] = labels
        return dict(batch)


def answer_end(prompt_ids: list[int], conversation_ids: list[int], end_token_id: int, conversation: str) -> int:
    """Where the answer's tokens stop: one past the last `<|end|>` of the conversation, which closes the answer.

    The answer starts right after the prompt, so the prompt's tokens must be a prefix of the conversation's; what the
    chat template adds after `<|end|>` (a newline) is not part of the answer.

    Args:
        prompt_ids (`list[int]`): tokens of the generation prompt (through `<|assistant|>`).
        conversation_ids (`list[int]`): tokens of the whole conversation, answer included, without padding.
        end_token_id (`int`): the id of `<|end|>`.
        conversation (`str`): the conversation's text, named in the errors.

    Raises:
        `ValueError`: if the prompt is not a prefix of the conversation, or the answer has no `<|end|>`.
    """
    if conversation_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(
            "The prompt's tokens are not a prefix of the conversation's tokens, so the answer cannot be located; "
            f"check the chat template. Conversation: {conversation!r}"
        )
    answer = conversation_ids[len(prompt_ids) :]
    if end_token_id not in answer:
        raise ValueError(f"The answer has no <|end|> token; check the chat template: {conversation!r}")
    return len(conversation_ids) - answer[::-1].index(end_token_id)
