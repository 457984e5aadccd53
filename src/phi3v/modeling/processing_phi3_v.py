"""Phi-3-V processor: the official tokenisation of image tags, batched, with transformers' processing kwargs."""

import base64
import binascii
import io
import json
import math
from pathlib import Path

import requests
import torch
from PIL import Image
from torch.nn.utils.rnn import pad_sequence
from transformers import BatchFeature, ProcessorMixin
from transformers.processing_utils import ImagesKwargs, ProcessingKwargs, Unpack

from .chat_format import IMAGE_TAG, to_phi3v_messages


# The text kwargs `__call__` implements; any other `TextKwargs` key set to a true value is refused.
SUPPORTED_TEXT_KWARGS = {
    "add_special_tokens",
    "padding",
    "truncation",
    "max_length",
    "pad_to_multiple_of",
    "padding_side",
    "return_tensors",
    "return_attention_mask",
    "verbose",
}


class Phi3VImagesKwargs(ImagesKwargs, total=False):
    """`num_crops`: the most HD crops per image for this call (`None`: the image processor's)."""

    num_crops: int | None


class Phi3VProcessorKwargs(ProcessingKwargs, total=False):
    images_kwargs: Phi3VImagesKwargs


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

    valid_processor_kwargs = Phi3VProcessorKwargs
    # Defaults of `__call__` (the lowest priority in `_merge_kwargs`): a batch comes back padded, as PyTorch tensors.
    text_kwargs = {"padding": True, "return_tensors": "pt"}

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        if chat_template is None and tokenizer is not None:
            chat_template = tokenizer.chat_template
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(
        self,
        text: str | list[str],
        images=None,
        videos=None,
        audio=None,
        **kwargs: Unpack[Phi3VProcessorKwargs],
    ) -> BatchFeature:
        """Tokenises texts with their images.

        Args:
            text (`str` or `list[str]`): one prompt, or a batch of prompts.
            images (*optional*): for one prompt, an image or a list of its images (the reference call
                `processor(prompt, [image])`); for a batch, a list of per-sample image lists, or a flat list that is
                handed out in order by the number of distinct tags in each prompt.
            videos, audio: Phi-3-V reads neither; only `None` is accepted.
            **kwargs: transformers' processing kwargs, flat or per modality (`text_kwargs`, `images_kwargs`):
                - `padding` (`bool` or `str`, defaults to `True`): `True`/`"longest"` pads to the longest sample,
                  `"max_length"` to `max_length`, `False`/`"do_not_pad"` requires equal lengths;
                - `padding_side` (`"left"` or `"right"`, defaults to the tokenizer's), `pad_to_multiple_of`;
                - `add_special_tokens` (`bool`, defaults to `True`): the BOS of each text chunk;
                - `truncation` with `max_length`: cuts text on the tokenizer's `truncation_side`, and refuses a
                  sample whose cut would fall in an image's placeholder tokens;
                - `return_tensors` (`"pt"` or `None`, defaults to `"pt"`), `return_attention_mask`;
                - `num_crops` (`int`, an image kwarg): overrides the image processor's `num_crops` for this call.

        Returns:
            [`BatchFeature`] with `input_ids` and `attention_mask` (`(batch_size, length)`), and, when there are
            images, `pixel_values` (`(num_images, num_crops + 1, 3, crop, crop)`) and `image_sizes`
            (`(num_images, 2)`), images in the order of their samples.
        """
        if videos is not None or audio is not None:
            raise ValueError("Phi-3-V reads text and images only; got videos or audio")
        known = set(Phi3VProcessorKwargs.__annotations__) | {"common_kwargs"}
        for modality in ("text_kwargs", "images_kwargs"):
            known |= set(Phi3VProcessorKwargs.__annotations__[modality].__annotations__)
        if unknown := sorted(set(kwargs) - known):
            raise TypeError(f"Phi3VProcessor got unexpected arguments: {unknown}")
        merged = self._merge_kwargs(Phi3VProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        text_kwargs, images_kwargs = merged["text_kwargs"], merged["images_kwargs"]
        if unsupported := sorted(k for k, v in text_kwargs.items() if v and k not in SUPPORTED_TEXT_KWARGS):
            raise ValueError(f"Phi3VProcessor does not support the text kwargs {unsupported}")
        if unsupported := sorted(set(images_kwargs) - {"num_crops", "return_tensors"}):
            raise ValueError(f"Phi3VProcessor does not support the image kwargs {unsupported}; set `num_crops` only")
        return_tensors = text_kwargs.get("return_tensors")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"Phi3VProcessor returns PyTorch tensors only, got return_tensors={return_tensors!r}")

        texts = [text] if isinstance(text, str) else list(text)
        per_sample_images = self._images_per_sample(texts, images)
        flat_images = [image for sample in per_sample_images for image in sample]
        image_inputs = None
        if flat_images:
            image_inputs = self.image_processor(flat_images, num_crops=images_kwargs.get("num_crops"))

        add_special_tokens = text_kwargs.get("add_special_tokens", True)
        sequences, image_index = [], 0
        for sample_text, sample_images in zip(texts, per_sample_images, strict=True):
            token_counts = []
            if image_inputs is not None:
                token_counts = image_inputs["num_img_tokens"][image_index : image_index + len(sample_images)]
            image_index += len(sample_images)
            sequences.append(self.tokenize_with_images(sample_text, token_counts, add_special_tokens))

        max_length = text_kwargs.get("max_length")
        if text_kwargs.get("truncation") not in (None, False, "do_not_truncate"):
            sequences = self._truncate(sequences, max_length or self.tokenizer.model_max_length)
        input_ids, attention_mask = pad_sequences(
            sequences,
            self.tokenizer.pad_token_id,
            text_kwargs.get("padding_side") or self.tokenizer.padding_side,
            length=self._padded_length(sequences, text_kwargs),
        )
        data = {"input_ids": input_ids}
        if text_kwargs.get("return_attention_mask", True):
            data["attention_mask"] = attention_mask
        if image_inputs is not None:
            data["pixel_values"] = image_inputs["pixel_values"]
            data["image_sizes"] = image_inputs["image_sizes"]
        return BatchFeature(data)

    def _padded_length(self, sequences: list[list[int]], text_kwargs: dict) -> int:
        """Length of the padded batch, following `padding`, `max_length` and `pad_to_multiple_of`."""
        longest = max((len(s) for s in sequences), default=0)
        padding = text_kwargs.get("padding", True)
        if padding in (False, None, "do_not_pad"):
            if len({len(s) for s in sequences}) > 1:
                raise ValueError("Samples have different lengths; pass padding=True to batch them")
            length = longest
        elif padding == "max_length":
            length = max(longest, text_kwargs.get("max_length") or self.tokenizer.model_max_length)
        else:
            length = longest
        if multiple := text_kwargs.get("pad_to_multiple_of"):
            length = math.ceil(length / multiple) * multiple
        return length

    def _truncate(self, sequences: list[list[int]], max_length: int) -> list[list[int]]:
        """Cuts sequences to `max_length` on the tokenizer's truncation side, refusing any cut through an image."""
        truncated = []
        for row, sequence in enumerate(sequences):
            excess = len(sequence) - max_length
            if excess > 0:
                right = self.tokenizer.truncation_side == "right"
                kept, cut = (
                    (sequence[:max_length], sequence[max_length:]) if right else (sequence[excess:], sequence[:excess])
                )
                if any(token < 0 for token in cut):
                    raise ValueError(
                        f"Sample {row} has {len(sequence)} tokens: truncating it to max_length={max_length} would cut "
                        "through an image's placeholder tokens, which the model cannot read. Raise max_length, use "
                        "fewer crops (num_crops) or drop the sample."
                    )
                sequence = kept
            truncated.append(sequence)
        return truncated

    def tokenize_with_images(
        self, text: str, image_token_counts: list[int], add_special_tokens: bool = True
    ) -> list[int]:
        """Token ids of one prompt; the tag `<|image_k|>` becomes `-k` repeated `image_token_counts[k - 1]` times.

        Args:
            text (`str`): the prompt, with `<|image_1|>`..`<|image_n|>` tags.
            image_token_counts (`list[int]`): placeholder tokens of each of its n images.
            add_special_tokens (`bool`, *optional*, defaults to `True`): a BOS before each text chunk (the official
                layout: one at the start and one after every image block).
        """
        tags = [int(k) for k in IMAGE_TAG.findall(text)]
        if sorted(set(tags)) != list(range(1, len(image_token_counts) + 1)):
            raise ValueError(
                f"The prompt's image tags {sorted(set(tags))} must be exactly <|image_1|>..<|image_"
                f"{len(image_token_counts)}|> for its {len(image_token_counts)} image(s): {text[:200]!r}"
            )
        if not tags:
            return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        chunks = IMAGE_TAG.split(text)[::2]
        ids = []
        for i, chunk in enumerate(chunks):
            ids.extend(self.tokenizer(chunk, add_special_tokens=add_special_tokens)["input_ids"])
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

    def apply_chat_template(self, conversation, chat_template=None, processor_kwargs=None, **kwargs):
        """transformers' `apply_chat_template`, for TRL's structured content as well as string content.

        The official template renders string content only, so each conversation is first flattened with
        [`to_phi3v_messages`] (the k-th image part becomes `<|image_k|>`). Images given inside the parts
        (`{"type": "image", "image": PIL}`, or `"url"` / `"path"`) are loaded and passed to `__call__` with
        `tokenize=True`; the result equals rendering the flattened conversation and calling the processor on it.

        Args:
            conversation (`list[dict]` or `list[list[dict]]`): one conversation or a batch of them.
            chat_template (`str`, *optional*): defaults to the official template.
            processor_kwargs (`dict`, *optional*): kwargs of `__call__` when `tokenize=True`.
            **kwargs: the other arguments of [`~ProcessorMixin.apply_chat_template`] (`tokenize`, `return_dict`,
                `add_generation_prompt`, ...).
        """
        if kwargs.get("return_assistant_tokens_mask"):
            raise ValueError(
                "The official Phi-3-V template has no generation markers, so it cannot give assistant masks; "
                "phi3v's collators build the labels of assistant turns themselves."
            )
        conversations, is_batched = self._normalize_conversations(conversation)
        per_sample_images, _, _, _ = self._multimodal_inputs_from_conversations(conversations, {})
        per_sample_images = [[open_image(image) for image in images] for images in per_sample_images]
        flattened = [to_phi3v_messages(messages) for messages in conversations]
        if kwargs.get("tokenize") and any(per_sample_images):
            images = per_sample_images if is_batched else per_sample_images[0]
            processor_kwargs = {**(processor_kwargs or {}), "images": images}
        return super().apply_chat_template(
            flattened if is_batched else flattened[0], chat_template, processor_kwargs=processor_kwargs, **kwargs
        )

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens: bool = True, **kwargs):
        """Decodes generated sequences (what the `image-text-to-text` pipeline calls), dropping image placeholders."""
        return self.batch_decode(generated_outputs, skip_special_tokens=skip_special_tokens, **kwargs)

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


def open_image(source):
    """The image an image part names, as the processor reads it: objects as given, a local path, an http(s) URL or
    base64 data (optionally a `data:image/...` URL) opened with PIL.

    Unlike transformers' `load_image`, nothing is converted here: `load_image` applies PIL's plain RGB conversion, which
    turns transparency black and clips 16-bit greys, whereas the image processor's `to_rgb_image` composites on white
    and scales, as data preparation does.
    """
    if not isinstance(source, str):
        return source
    if source.startswith(("http://", "https://")):
        response = requests.get(source, timeout=30)
        response.raise_for_status()
        return Image.open(io.BytesIO(response.content))
    if Path(source).is_file():
        return Image.open(source)
    try:
        data = base64.b64decode(
            source.split(",", 1)[-1] if source.startswith("data:image/") else source, validate=True
        )
    except binascii.Error:
        raise ValueError(f"Image {source[:100]!r} is not an http(s) URL, an existing file or base64 data") from None
    return Image.open(io.BytesIO(data))


def pad_sequences(
    sequences: list[list[int]], pad_token_id: int, padding_side: str, length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads token lists into `input_ids` and an `attention_mask` built from lengths (the pad id is also an EOS id, so
    a mask built from `input_ids != pad` would hide real `<|endoftext|>` tokens).

    Args:
        sequences (`list[list[int]]`): token ids per sample.
        pad_token_id (`int`): the id written into padding.
        padding_side (`str`): `"left"` or `"right"`.
        length (`int`, *optional*): pad to this length (at least the longest sample); the longest sample by default.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    ids = [torch.tensor(sequence, dtype=torch.long) for sequence in sequences]
    ids.append(torch.zeros(length or 0, dtype=torch.long))  # a row of the target length, dropped below
    masks = [torch.ones_like(row) for row in ids]
    input_ids = pad_sequence(ids, batch_first=True, padding_value=pad_token_id, padding_side=padding_side)
    attention_mask = pad_sequence(masks, batch_first=True, padding_value=0, padding_side=padding_side)
    return input_ids[:-1], attention_mask[:-1]
