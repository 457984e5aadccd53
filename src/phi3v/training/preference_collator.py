"""The DPO collator: preference pairs with Phi-3-V images in, TRL's `[chosen rows; rejected rows]` batch out."""

from collections.abc import Mapping

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import ProcessorMixin

from phi3v.data.conversation import PREFERENCE_SIDES as SIDES
from phi3v.data.conversation import preference_conversations
from phi3v.data.image_columns import image_size, load_image

from .encoding import encode_conversation, too_long_message


class Phi3VPreferenceCollator:
    r"""
    Collates TRL conversational preference rows (`images`, `prompt`, `chosen`, `rejected`) for `DPOTrainer`.

    The output is what TRL's DPO loss reads: `input_ids` and `attention_mask` of shape `(2 * batch, length)` (all
    chosen sequences, then all rejected ones), `completion_mask` (1 on the chosen or rejected answers and their
    `<|end|>`, encoded as the SFT labels are), and `pixel_values`/`image_sizes` listing each pair's images twice, in
    row order, so every row finds its own images.

    Args:
        processor ([`Phi3VProcessor`]): the checkpoint's processor.
        max_length (`int`, *optional*): the longest sequence allowed, in tokens; a longer one raises (never truncated).
    """

    def __init__(self, processor: ProcessorMixin, max_length: int | None = None):
        self.processor = processor
        self.max_length = max_length

    def sequence_length(self, example: Mapping) -> int:
        """Tokens of the longer side of a pair, from image sizes alone (undecoded cells are not decoded)."""
        conversations = preference_conversations(example)
        counts = [
            self.processor.image_processor.num_image_tokens(*image_size(i)) for i in conversations["chosen"].images
        ]
        return max(len(encode_conversation(self.processor, c, counts).input_ids) for c in conversations.values())

    def __call__(self, examples: list[Mapping]) -> dict[str, torch.Tensor]:
        pairs = [preference_conversations(example) for example in examples]
        images = [load_image(image) for pair in pairs for image in pair["chosen"].images]
        image_inputs = self.processor.image_processor(images) if images else None
        counts = image_inputs["num_img_tokens"] if image_inputs is not None else []

        sequences = {side: [] for side in SIDES}
        masks = {side: [] for side in SIDES}
        start = 0
        for pair in pairs:
            pair_counts = counts[start : start + len(pair["chosen"].images)]
            start += len(pair["chosen"].images)
            for side in SIDES:
                encoded = encode_conversation(self.processor, pair[side], pair_counts)
                if self.max_length is not None and len(encoded.input_ids) > self.max_length:
                    raise ValueError(too_long_message(len(encoded.input_ids), self.max_length, "A preference pair"))
                mask = torch.zeros(len(encoded.input_ids), dtype=torch.long)
                for begin, end in encoded.answer_spans:
                    mask[begin:end] = 1
                sequences[side].append(torch.tensor(encoded.input_ids))
                masks[side].append(mask)

        all_sequences = sequences["chosen"] + sequences["rejected"]
        batch = {
            "input_ids": pad_sequence(
                all_sequences, batch_first=True, padding_value=self.processor.tokenizer.pad_token_id
            ),
            "attention_mask": pad_sequence([torch.ones_like(s) for s in all_sequences], batch_first=True),
            "completion_mask": pad_sequence(masks["chosen"] + masks["rejected"], batch_first=True),
        }
        if image_inputs is not None:
            batch["pixel_values"] = torch.cat([image_inputs["pixel_values"]] * 2)
            batch["image_sizes"] = torch.cat([image_inputs["image_sizes"]] * 2)
        return batch
