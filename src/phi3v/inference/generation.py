"""Batched greedy generation with Phi-3-V: left padding, the KV cache, and stops on `<|end|>` / `<|endoftext|>`.

Each prompt comes with its own list of images (several, one, or none), decoded batch by batch.

Left padding puts every prompt's last token in the last column, so a batch decodes in lockstep; the attention mask
(built from lengths by the processor) gives each sample the positions it would have alone. Batched answers therefore
equal one-at-a-time answers, exactly in float32 (`tests/unit/test_evaluation_generation.py`); in bf16 on GPU, padding can
change the rounding and so, rarely, a near-tied greedy choice.

The blank-image control asks the same model the same question with every image replaced by a plain grey square. The
square has a fixed size, so not even the photo's aspect ratio (which shows in the number of image tokens) reaches the
model: whatever it still gets right comes from the text and the training prior alone.

Example:

```python
>>> prompt = build_prompt(processor, [{"role": "user", "content": "<|image_1|>What is shown in this image?"}])
>>> answers = generate_answers(model, processor, [prompt, prompt], [[image_a], [image_b]], batch_size=8)
>>> blank = generate_answers(model, processor, [prompt, prompt], grey_images([[image_a], [image_b]]))
```
"""

from collections.abc import Sequence

import torch
from accelerate.utils import gather_object
from PIL import Image
from tqdm.auto import tqdm

from phi3v.data.image_columns import load_image
from phi3v.modeling.chat_format import build_prompt, stop_token_ids


GREY = (128, 128, 128)
BLANK_IMAGE_SIZE = 336  # the official crop size


def grey_image(size: int = BLANK_IMAGE_SIZE) -> Image.Image:
    """A plain mid-grey RGB square, the image of the blank-image control.

    Args:
        size (`int`, *optional*, defaults to 336): side in pixels.
    """
    return Image.new("RGB", (size, size), GREY)


def grey_images(images: Sequence[list]) -> list[list]:
    """The blank-image control's images: as many grey squares as each sample has images."""
    return [[grey_image()] * len(sample) for sample in images]


@torch.no_grad()
def generate_answers(
    model,
    processor,
    prompts: Sequence[str],
    images: Sequence,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    num_crops: int | None = None,
    show_progress: bool = True,
    description: str = "Generating",
) -> list[str]:
    """Greedy answers to prompts with their images, `batch_size` at a time, in the order given.

    Args:
        model ([`Phi3VForCausalLM`] or a `PeftModel` over one): the model, in eval mode, on its device.
        processor ([`Phi3VProcessor`]): tokenises the prompts with their images.
        prompts (`Sequence[str]`): one rendered prompt per sample (`phi3v.modeling.chat_format.build_prompt`), with
            `<|image_k|>` tags.
        images (`Sequence[list]`): each sample's images, in tag order (PIL images, undecoded dataset cells or paths;
            an empty list for a text-only prompt). It is sliced batch by batch and decoded only then.
        batch_size (`int`, *optional*, defaults to 8): samples per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to 64): generation budget; the target answer is ~25 tokens.
        num_crops (`int`, *optional*): overrides the processor's number of HD crops (fewer = shorter prompts).
        show_progress (`bool`, *optional*, defaults to `True`): show a progress bar over samples.
        description (`str`, *optional*, defaults to `"Generating"`): the progress bar's label.

    Returns:
        `list[str]`: the decoded new tokens of each sample, special tokens removed, stripped.
    """
    if len(prompts) != len(images):
        raise ValueError(f"Got {len(prompts)} prompts but {len(images)} images.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    tokenizer = processor.tokenizer
    answers = []
    with tqdm(total=len(prompts), desc=description, unit="sample", disable=not show_progress) as progress:
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            inputs = processor(
                list(prompts[start:stop]),
                images=[[load_image(image) for image in sample] for sample in images[start:stop]],
                padding_side="left",
                num_crops=num_crops,
            ).to(model.device)
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                eos_token_id=stop_token_ids(tokenizer),
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            answers.extend(text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True))
            progress.update(stop - start)
    return answers


@torch.no_grad()
def answer_items(model, processor, items: Sequence[dict], batch_size: int = 16, max_new_tokens: int = 64) -> list[str]:
    """Greedy answers to evaluation items (`prompt` messages and `images`, `Task.eval_items`), in eval mode;
    the model is left in the mode it was in (training callbacks call this mid-training)."""
    was_training = model.training
    model.eval()
    prompts = [build_prompt(processor, item["prompt"]) for item in items]
    images = [item["images"] for item in items]
    answers = generate_answers(
        model, processor, prompts, images, batch_size=batch_size, max_new_tokens=max_new_tokens, show_progress=False
    )
    model.train(was_training)
    return answers


def generate_answers_distributed(accelerator, model, processor, prompts: Sequence[str], images: Sequence, **kwargs):
    """`generate_answers` with the samples split between accelerate's processes; every process gets all answers.

    Each process generates a contiguous block of samples (`Accelerator.split_between_processes`) and the blocks are
    gathered in process order, so the answers come back in the order of `prompts`. With one process this is plain
    `generate_answers`. Only the main process shows a progress bar.

    Args:
        accelerator (`accelerate.Accelerator`): the launch's accelerator; the model must be on `accelerator.device`.
        model, processor, prompts, images: as for `generate_answers`.
        **kwargs: the other arguments of `generate_answers` (`batch_size`, `max_new_tokens`, ...).

    Returns:
        `list[str]`: one answer per prompt, on every process.
    """
    if len(prompts) != len(images):
        raise ValueError(f"Got {len(prompts)} prompts but {len(images)} images.")
    kwargs["show_progress"] = kwargs.get("show_progress", True) and accelerator.is_local_main_process
    with accelerator.split_between_processes(list(range(len(prompts)))) as indices:
        start, stop = (indices[0], indices[-1] + 1) if indices else (0, 0)
        answers = generate_answers(model, processor, prompts[start:stop], _Window(images, start, stop), **kwargs)
    return gather_object(answers)


class _Window(Sequence):
    """Items `start` to `stop` of a sequence, read from it only when sliced (keeps a dataset column lazy)."""

    def __init__(self, items: Sequence, start: int, stop: int):
        self.items, self.start, self.stop = items, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key):
        positions = range(self.start, self.stop)[key]
        if isinstance(positions, int):
            return self.items[positions]
        if positions.step == 1:
            return self.items[positions.start : positions.stop]
        return [self.items[position] for position in positions]
