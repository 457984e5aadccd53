"""Phi-3-V processor: the official tokenisation of image tags, batched, with padding on either side."""

import json
import re
from pathlib import Path

import torch
from transformers import BatchFeature, ProcessorMixin


IMAGE_TAG = re.compile(r"<\|image_(\d+)\|>")


class Phi3VProcessor(ProcessorMixin):
    r"""Tokenizer + [`Phi3VImageProcessor`] + the official chat template, for one sample or a batch.

    `<|image_k|>` in a text stands for the k-th image of that sample. Each tag becomes `-k` repeated by that image's
    token count. Text around the tags is tokenised chunk by chunk with special tokens, as the official processor does,
    so a BOS token follows every image block; the model was trained on exactly this layout.

    Args:
        image_processor ([`Phi3VImageProcessor`]): the image processor.
        tokenizer ([`PreTrainedTokenizerBase`]): the Phi-3 tokenizer.
        chat_template (`str`, *optional*): defaults to the tokenizer's (the official Phi-3-V template).
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        if chat_template is None and tokenizer is not None:
            chat_template = tokenizer.chat_template
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    special_image_token = "<|image|>"

    @property
    def num_img_tokens(self) -> int:
        """Tokens per crop (144 for the official checkpoints), as the reference processor exposes it."""
        return self.image_processor.merged_grid**2

    def calc_num_image_tokens_from_image_size(self, width: int, height: int, num_crops: int | None = None) -> int:
        """Placeholder tokens of a `width` x `height` image, without decoding it."""
        return self.image_processor.num_image_tokens(width, height, num_crops)

    def __call__(
        self,
        text: str | list[str],
        images=None,
        padding: bool | str = True,
        padding_side: str | None = None,
        num_crops: int | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Tokenises texts with their images.

        Args:
            text (`str` or `list[str]`): one prompt, or a batch of prompts.
            images (*optional*): for one prompt, an image or a list of its images (the reference call
                `processor(prompt, [image])`); for a batch, a list of per-sample image lists, or a flat list that is
                handed out in order by the number of distinct tags in each prompt.
            padding (`bool` or `str`, *optional*, defaults to `True`): pad the batch to its longest sample.
            padding_side (`str`, *optional*): `"left"` (generation) or `"right"`; defaults to the tokenizer's.
            num_crops (`int`, *optional*): overrides the image processor's `num_crops` for this call.
            return_tensors (`str`, *optional*, defaults to `"pt"`): only `"pt"` is supported.

        Returns:
            [`BatchFeature`] with `input_ids` and `attention_mask` (`(batch_size, length)`), and, when there are
            images, `pixel_values` (`(num_images, num_crops + 1, 3, crop, crop)`) and `image_sizes`
            (`(num_images, 2)`), images in the order of their samples.
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(f"Phi3VProcessor returns PyTorch tensors only, got return_tensors={return_tensors!r}")
        if kwargs:
            raise TypeError(f"Phi3VProcessor got unexpected arguments: {sorted(kwargs)}")
        texts = [text] if isinstance(text, str) else list(text)
        per_sample_images = self._images_per_sample(texts, images)
        flat_images = [image for sample in per_sample_images for image in sample]
        image_inputs = self.image_processor(flat_images, num_crops=num_crops) if flat_images else None

        sequences, image_index = [], 0
        for sample_text, sample_images in zip(texts, per_sample_images, strict=True):
            token_counts = []
            if image_inputs is not None:
                token_counts = image_inputs["num_img_tokens"][image_index : image_index + len(sample_images)]
            image_index += len(sample_images)
            sequences.append(self.tokenize_with_images(sample_text, token_counts))

        padding_side = padding_side or self.tokenizer.padding_side
        if not padding and len({len(s) for s in sequences}) > 1:
            raise ValueError("Samples have different lengths; pass padding=True to batch them")
        input_ids, attention_mask = pad_sequences(sequences, self.tokenizer.pad_token_id, padding_side)
        data = {"input_ids": input_ids, "attention_mask": attention_mask}
        if image_inputs is not None:
            data["pixel_values"] = image_inputs["pixel_values"]
            data["image_sizes"] = image_inputs["image_sizes"]
        return BatchFeature(data)

    def tokenize_with_images(self, text: str, image_token_counts: list[int]) -> list[int]:
        """Token ids of one prompt; the tag `<|image_k|>` becomes `-k` repeated `image_token_counts[k - 1]` times."""
        tags = [int(k) for k in IMAGE_TAG.findall(text)]
        if sorted(set(tags)) != list(range(1, len(image_token_counts) + 1)):
            raise ValueError(
                f"The prompt's image tags {sorted(set(tags))} must be exactly <|image_1|>..<|image_"
                f"{len(image_token_counts)}|> for its {len(image_token_counts)} image(s): {text[:200]!r}"
            )
        if not tags:
            return self.tokenizer(text)["input_ids"]
        chunks = IMAGE_TAG.split(text)[::2]
        ids = []
        for i, chunk in enumerate(chunks):
            ids.extend(self.tokenizer(chunk)["input_ids"])
            if i < len(tags):
                ids.extend([-tags[i]] * image_token_counts[tags[i] - 1])
        return ids

    def _images_per_sample(self, texts: list[str], images) -> list[list]:
        if images is None:
            return [[] for _ in texts]
        if not isinstance(images, list | tuple):
            images = [images]
        if len(texts) == 1 and not any(isinstance(image, list | tuple) for image in images):
            return [list(images)]
        if all(isinstance(image, list | tuple) for image in images):
            if len(images) != len(texts):
                raise ValueError(f"Got {len(texts)} texts but image lists for {len(images)} samples")
            return [list(sample) for sample in images]
        counts = [len(set(IMAGE_TAG.findall(t))) for t in texts]
        if sum(counts) != len(images):
            raise ValueError(f"The prompts have {sum(counts)} distinct image tags but {len(images)} images were given")
        starts = [sum(counts[:i]) for i in range(len(counts))]
        return [list(images[start : start + count]) for start, count in zip(starts, counts, strict=True)]

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """Decodes token ids, dropping image placeholders (negative ids), which the tokenizer cannot decode."""
        if isinstance(sequences, torch.Tensor):
            sequences = sequences.tolist()
        return self.tokenizer.batch_decode([[t for t in seq if t >= 0] for seq in sequences], **kwargs)

    def decode(self, token_ids, **kwargs) -> str:
        """Decodes one sequence, dropping image placeholders."""
        if isinstance(token_ids, torch.Tensor):
            token_ids = token_ids.tolist()
        return self.tokenizer.decode([t for t in token_ids if t >= 0], **kwargs)

    def save_pretrained(self, save_directory, **kwargs):
        """Saves in the official layout as well (`preprocessor_config.json` for the image processor, the chat template
        in `tokenizer_config.json`), so the reference code and vLLM read what we write.

        The tokenizer is declared as `PreTrainedTokenizerFast`: every transformers version then loads `tokenizer.json`
        verbatim, whereas `LlamaTokenizer` makes transformers 5 rebuild the pre-tokenizer and drop the "▁" (29871)
        that the official tokenisation puts after special tokens.
        """
        saved = super().save_pretrained(save_directory, **kwargs)
        self.image_processor.save_pretrained(save_directory)
        tokenizer_config_path = Path(save_directory) / "tokenizer_config.json"
        tokenizer_config = json.loads(tokenizer_config_path.read_text())
        tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        tokenizer_config["chat_template"] = self.chat_template
        tokenizer_config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n")
        return saved

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "image_sizes"]


def pad_sequences(
    sequences: list[list[int]], pad_token_id: int, padding_side: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads token lists into `input_ids` and an `attention_mask` built from lengths (the pad id is also an EOS id, so
    a mask built from `input_ids != pad` would hide real `<|endoftext|>` tokens).

    Args:
        sequences (`list[list[int]]`): token ids per sample.
        pad_token_id (`int`): the id written into padding.
        padding_side (`str`): `"left"` or `"right"`.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    length = max((len(s) for s in sequences), default=0)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        span = slice(length - len(sequence), length) if padding_side == "left" else slice(0, len(sequence))
        input_ids[row, span] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def to_phi3v_messages(messages: list[dict], num_images: int = 0) -> list[dict]:
    """Messages with string content and `<|image_k|>` tags, the only form the official chat template renders.

    TRL's structured content (`[{"type": "image"}, {"type": "text", "text": "..."}]`) is flattened part by part: the
    k-th image part of the conversation becomes `<|image_k|>` followed by a newline (the model cards' layout), text parts
    are kept as they are. String content is kept as it is. When the conversation names no image at all but the row has
    `num_images` images, their tags are put at the start of the first user turn, as TRL does for string prompts.

    Args:
        messages (`list[dict]`): `{"role", "content"}` messages; content is a string or a list of typed parts.
        num_images (`int`, *optional*, defaults to 0): images of the row, for conversations that do not place them.

    Returns:
        `list[dict]`: new `{"role", "content"}` messages with string content.
    """
    flattened, image_index = [], 0
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            pieces = []
            for part in content:
                if part["type"] == "image":
                    image_index += 1
                    pieces.append(f"<|image_{image_index}|>\n")
                elif part["type"] == "text":
                    pieces.append(part["text"])
                else:
                    raise ValueError(f"Unsupported content part type {part['type']!r}; Phi-3-V reads text and images.")
            content = "".join(pieces)
        flattened.append({"role": message["role"], "content": content})
    if num_images and not any(IMAGE_TAG.search(message["content"]) for message in flattened):
        first_user = next((m for m in flattened if m["role"] == "user"), None)
        if first_user is None:
            raise ValueError(f"The row has {num_images} image(s) but no user turn to place them in.")
        first_user["content"] = "".join(f"<|image_{k}|>\n" for k in range(1, num_images + 1)) + first_user["content"]
    return flattened


def stop_token_ids(tokenizer) -> list[int]:
    """Generation stops on `<|end|>` (turn end) and `<|endoftext|>`; the checkpoints' own eos (2) is never emitted."""
    return [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
