"""The DPO collator: preference pairs with Phi-3-V images in, TRL's `[chosen rows; rejected rows]` batch out."""

from collections.abc import Mapping

import torch
from transformers import ProcessorMixin

from phi3v.modeling.processing_phi3_v import pad_sequences

from .collator import answer_end


class Phi3VPreferenceCollator:
    r"""
    Collates TRL conversational preference rows (`images`, `prompt`, `chosen`, `rejected`) for `DPOTrainer`.

    The output is what TRL's DPO loss reads: `input_ids` and `attention_mask` of shape `(2 * batch, length)` (all
    chosen sequences, then all rejected ones), `completion_mask` (1 on the answer tokens that are scored), and
    `pixel_values`/`image_sizes` listing each pair's images twice, in row order, so every row finds its own image.

    Features:
        - **Answer-only log-probabilities.** `completion_mask` covers the answer and the `<|end|>` closing it, as the
          SFT labels do; the prompt, its image placeholders (negative ids), the template's trailing newline and
          padding are 0, so negative ids never reach the loss.
        - **The official tokenisation.** Prompt and full conversation are rendered by the chat template and tokenised
          with the processor; the prompt must be a prefix of each conversation, or the collator raises.
        - **No silent truncation.** A sequence longer than `max_length` raises (truncation would cut an image).

    Args:
        processor ([`Phi3VProcessor`]): the checkpoint's processor.
        max_length (`int`, *optional*): the longest sequence allowed, in tokens.
    """

    def __init__(self, processor: ProcessorMixin, max_length: int | None = None):
        self.processor = processor
        self.max_length = max_length
        self.end_token_id = processor.tokenizer.convert_tokens_to_ids("<|end|>")

    def encode(self, prompt: list[dict], completion: list[dict], image_token_counts: list[int]) -> tuple[list, list]:
        """Token ids of the prompt (through `<|assistant|>`) and of the completion up to and including `<|end|>`."""
        template = self.processor.apply_chat_template
        prompt_text = template(prompt, tokenize=False, add_generation_prompt=True)
        full_text = template(prompt + completion, tokenize=False)
        prompt_ids = self.processor.tokenize_with_images(prompt_text, image_token_counts)
        full_ids = self.processor.tokenize_with_images(full_text, image_token_counts)
        end = answer_end(prompt_ids, full_ids, self.end_token_id, full_text)
        return prompt_ids, full_ids[len(prompt_ids) : end]

    def __call__(self, examples: list[Mapping]) -> dict[str, torch.Tensor]:
        images = [list(example["images"]) for example in examples]
        flat_images = [image for sample in images for image in sample]
        image_inputs = self.processor.image_processor(flat_images) if flat_images else None
        token_counts = image_inputs["num_img_tokens"] if image_inputs is not None else []

        sequences = {"chosen": [], "rejected": []}
        completion_spans = {"chosen": [], "rejected": []}
        start = 0
        for example, sample_images in zip(examples, images, strict=True):
            counts = token_counts[start : start + len(sample_images)]
            start += len(sample_images)
            for side in ("chosen", "rejected"):
                prompt_ids, completion_ids = self.encode(list(example["prompt"]), list(example[side]), counts)
                sequences[side].append(prompt_ids + completion_ids)
                completion_spans[side].append((len(prompt_ids), len(prompt_ids) + len(completion_ids)))

        all_sequences = sequences["chosen"] + sequences["rejected"]
        longest = max(len(s) for s in all_sequences)
        if self.max_length is not None and longest > self.max_length:
            raise ValueError(
                f"A preference pair has a {longest}-token sequence, over max_length={self.max_length}; truncating it "
                "would cut its image or answer. Raise `max_length` or lower `num_crops`."
            )
        input_ids, attention_mask = pad_sequences(all_sequences, self.processor.tokenizer.pad_token_id, "right")
        completion_mask = torch.zeros_like(attention_mask)
        for row, (begin, end) in enumerate(completion_spans["chosen"] + completion_spans["rejected"]):
            completion_mask[row, begin:end] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}
        if image_inputs is not None:
            batch["pixel_values"] = torch.cat([image_inputs["pixel_values"]] * 2)
            batch["image_sizes"] = torch.cat([image_inputs["image_sizes"]] * 2)
        return batch
