"""The SFT collator: conversational rows with images in, a right-padded Phi-3-V batch with assistant-only labels out.

Why our own and not TRL's `DataCollatorForVisionLanguageModeling`: TRL's truncates, and it tokenises the completion
apart from the prompt, which breaks Phi-3-V's layout (a BOS after every image block, placeholders counted per image).
"""

from collections.abc import Callable, Mapping

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import ProcessorMixin

from phi3v.data.conversation import Conversation, as_conversation
from phi3v.data.image_columns import image_size, load_image

from .encoding import encode_conversation, too_long_message


class Phi3VSFTCollator:
    r"""
    Collates rows into a batch for [`Phi3VForCausalLM`]; pass it as `data_collator` to TRL's `SFTTrainer`.

    Rows are in TRL's conversational vision format (`images` + `messages`, or `images` + `prompt`/`completion`), or
    in any layout that `to_conversation` turns into it (`phi3v.data.formats`). Labels are the trained assistant answers
    and the `<|end|>` closing each (see `phi3v.training.encoding`); everything else is -100. Rows may hold several
    images, several turns, or no image at all; their images are decoded here, batch by batch.

    Args:
        processor ([`Phi3VProcessor`]): the checkpoint's processor (its `num_crops` sets the image resolution).
        max_length (`int`, *optional*): the longest row allowed, in tokens; a longer one raises (never truncated).
        to_conversation (`Callable`, *optional*): turns a dataset row into TRL's conversational format first.

    Example:

    ```python
    >>> collator = Phi3VSFTCollator(processor)
    >>> batch = collator([{"images": [photo], "messages": [{"role": "user", "content": "<|image_1|>What is it?"},
    ...                                                    {"role": "assistant", "content": "A scarf."}]}])
    >>> sorted(batch)
    ['attention_mask', 'image_sizes', 'input_ids', 'labels', 'pixel_values']
    ```
    """

    def __init__(
        self,
        processor: ProcessorMixin,
        max_length: int | None = None,
        to_conversation: Callable[[Mapping], Mapping] | None = None,
    ):
        self.processor = processor
        self.max_length = max_length
        self.to_conversation = to_conversation

    def conversation(self, row: Mapping) -> Conversation:
        """The row as a [`Conversation`], after `to_conversation`."""
        return as_conversation(self.to_conversation(row) if self.to_conversation is not None else row)

    def sequence_length(self, row: Mapping) -> int:
        """Tokens of a row, image placeholders included, from image sizes alone (undecoded cells are not decoded)."""
        conversation = self.conversation(row)
        counts = [self.processor.image_processor.num_image_tokens(*image_size(i)) for i in conversation.images]
        return len(encode_conversation(self.processor, conversation, counts).input_ids)

    def __call__(self, rows: list[Mapping]) -> dict[str, torch.Tensor]:
        conversations = [self.conversation(row) for row in rows]
        images = [load_image(image) for conversation in conversations for image in conversation.images]
        image_inputs = self.processor.image_processor(images) if images else None
        counts = image_inputs["num_img_tokens"] if image_inputs is not None else []

        input_ids, labels, start = [], [], 0
        for conversation in conversations:
            encoded = encode_conversation(
                self.processor, conversation, counts[start : start + len(conversation.images)]
            )
            start += len(conversation.images)
            if self.max_length is not None and len(encoded.input_ids) > self.max_length:
                raise ValueError(too_long_message(len(encoded.input_ids), self.max_length))
            ids = torch.tensor(encoded.input_ids)
            row_labels = torch.full_like(ids, -100)
            for begin, end in encoded.answer_spans:
                row_labels[begin:end] = ids[begin:end]
            input_ids.append(ids)
            labels.append(row_labels)

        # The mask comes from lengths: the pad id is also `<|endoftext|>`, which can be a real token.
        batch = {
            "input_ids": pad_sequence(
                input_ids, batch_first=True, padding_value=self.processor.tokenizer.pad_token_id
            ),
            "attention_mask": pad_sequence([torch.ones_like(ids) for ids in input_ids], batch_first=True),
            "labels": pad_sequence(labels, batch_first=True, padding_value=-100),
        }
        if image_inputs is not None:
            batch["pixel_values"] = image_inputs["pixel_values"]
            batch["image_sizes"] = image_inputs["image_sizes"]
        return batch
