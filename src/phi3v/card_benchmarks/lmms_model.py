"""Phi-3-V for lmms-eval: the native model of this project behind lmms-eval's model interface, registered as
`phi3v_native` through the `lmms_eval.models` entry point (`phi3v.card_benchmarks.plugin`), so that

    python -m lmms_eval --model phi3v_native --model_args pretrained=outputs/phi3v-burberry,dtype=bfloat16 \\
        --tasks pope,chartqa --batch_size 8

evaluates any output of this project (a base checkpoint, a LoRA adapter over its base, a merged model) on lmms-eval's
own tasks: their prompts (`doc_to_text`), images (`doc_to_visual`), generation settings and metrics. On 8 GPUs, the
same arguments follow `accelerate launch --num_processes 8 -m lmms_eval`.

How a request becomes a prompt, as lmms-eval's own `phi3v` model does it: each `<image>` of the task's text becomes
`<|image_k|>` (MMMU interleaves its images this way); a text without `<image>` (or with a different number of them
than images) gets every tag in front, `<|image_1|>\\n<|image_2|>\\n...`, the model cards' layout. The text is the
user turn of Phi-3-V's chat template. Answers are greedy (every benchmark of the cards asks for temperature 0), up to
the task's `max_new_tokens` (1024 when it gives none, as lmms-eval's `phi3v`), stop at `<|end|>`, and are cut at
the first of the task's `until` strings. Requests with the same generation settings are batched, longest prompts
first; under `accelerate launch`, lmms-eval gives each process its share of the documents and this class puts the
model on the process's device.

Only `generate_until` is implemented: every benchmark of the model cards is a `generate_until` task in lmms-eval
0.7.3. `loglikelihood` (multiple-choice scoring by likelihood) and multi-round generation raise.
"""

import json
from collections import defaultdict
from collections.abc import Sequence

from accelerate import Accelerator
from lmms_eval.api.model import lmms
from PIL import Image
from tqdm.auto import tqdm

from phi3v.card_benchmarks.plugin import MODEL_NAME
from phi3v.errors import UsageError
from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import check_model_path, load_for_inference
from phi3v.modeling.chat_format import build_prompt, image_tag


IMAGE_PLACEHOLDER = "<image>"
DEFAULT_MAX_NEW_TOKENS = 1024  # lmms-eval's `phi3v` default, for tasks that set none (TextVQA)
GREEDY_SETTINGS = {"temperature": 0, "do_sample": False, "num_beams": 1}


def to_phi3v_text(context: str, num_images: int) -> str:
    """A task's text with Phi-3-V's image tags (see the module docstring).

    Args:
        context (`str`): the task's `doc_to_text`, possibly with `<image>` placeholders.
        num_images (`int`): how many images `doc_to_visual` gave.
    """
    if num_images and context.count(IMAGE_PLACEHOLDER) == num_images:
        for k in range(1, num_images + 1):
            context = context.replace(IMAGE_PLACEHOLDER, image_tag(k), 1)
        return context
    text = context.replace(IMAGE_PLACEHOLDER, "").strip() if IMAGE_PLACEHOLDER in context else context
    return "".join(image_tag(k) + "\n" for k in range(1, num_images + 1)) + text


def generation_settings(task: str, gen_kwargs: dict) -> tuple[int, list[str]]:
    """`max_new_tokens` and the stop strings of a task's generation settings, which must ask for greedy decoding.

    Raises:
        `UsageError`: for sampling, beam search or a setting this model does not know.
    """
    gen_kwargs = dict(gen_kwargs)
    until = gen_kwargs.pop("until", [])
    max_new_tokens = int(gen_kwargs.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
    gen_kwargs.pop("top_p", None)  # irrelevant to greedy decoding
    for key, greedy in GREEDY_SETTINGS.items():
        value = gen_kwargs.pop(key, greedy)
        if value not in (greedy, None):
            raise UsageError(f"Task {task} asks for {key}={value!r}; {MODEL_NAME} decodes greedily only.")
    if gen_kwargs:
        raise UsageError(f"Task {task} gives generation settings {MODEL_NAME} does not know: {sorted(gen_kwargs)}.")
    return max_new_tokens, [until] if isinstance(until, str) else list(until)


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """`text` up to the first of `stops` (lmms-eval's `until`), as lmms-eval's models cut it."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


class Phi3VNative(lmms):
    """Any output of this project, evaluated by lmms-eval with the native Phi-3-V (see the module docstring).

    Args:
        pretrained (`str`): a checkpoint (local or Hub id), a merged model, or a LoRA adapter directory.
        base_model (`str`, *optional*): for an adapter, the base to apply it to (default: the adapter's own).
        dtype (`str`, *optional*, defaults to `"auto"`): weight dtype, e.g. `bfloat16`; `auto` keeps the checkpoint's.
        device (`str`, *optional*): where to run with one process (default: accelerate's device); each process of a
            multi-process launch runs on its own device.
        batch_size (`int`, *optional*, defaults to 8): prompts per `generate` call (lmms-eval's command line passes its
            own `--batch_size`, 1 unless given).
        num_crops (`int`, *optional*): HD crops per image, overriding the processor's (the cards: 16 for one image).
        attn_implementation (`str`, *optional*): `sdpa`, `eager` or `flash_attention_2`.
    """

    def __init__(
        self,
        pretrained: str,
        base_model: str | None = None,
        dtype: str = "auto",
        device: str | None = None,
        batch_size: int | str = 8,
        num_crops: int | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        super().__init__()
        self.accelerator = Accelerator()
        if self.accelerator.num_processes > 1 or device is None:
            device = self.accelerator.device
        self._rank, self._world_size = self.accelerator.process_index, self.accelerator.num_processes
        check_model_path(pretrained, base_model)
        self.model, self.processor = load_for_inference(
            pretrained, base_model=base_model, dtype=dtype, device=device, attn_implementation=attn_implementation
        )
        self.batch_size = int(batch_size)
        self.num_crops = int(num_crops) if num_crops is not None else None

    def visuals(self, request) -> list[Image.Image]:
        """The images of one request, from its task's `doc_to_visual`.

        Raises:
            `UsageError`: for a video, audio or other non-image input, which Phi-3-V does not read.
        """
        _, _, doc_to_visual, doc_id, task, split = request.args
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
        for visual in visuals:
            if not isinstance(visual, Image.Image):
                raise UsageError(f"Task {task} gives a {type(visual).__name__}; {MODEL_NAME} reads images only.")
        return visuals

    def generate_until(self, requests) -> list[str]:
        groups = defaultdict(list)
        for index, request in enumerate(requests):
            _, gen_kwargs, _, _, task, _ = request.args
            groups[(task, json.dumps(gen_kwargs, sort_keys=True, default=str))].append(index)
        answers = [""] * len(requests)
        with tqdm(total=len(requests), desc=MODEL_NAME, unit="request", disable=self.rank != 0) as progress:
            for (task, _), indices in groups.items():
                max_new_tokens, stops = generation_settings(task, requests[indices[0]].args[1])
                # Longest texts first: batches of similar lengths pad less, and running out of memory shows at once.
                indices.sort(key=lambda index: -len(requests[index].args[0]))
                # A batch's images are read only when it runs, so a 9,000-image task is never decoded at once.
                for start in range(0, len(indices), self.batch_size):
                    batch = indices[start : start + self.batch_size]
                    images = [self.visuals(requests[index]) for index in batch]
                    prompts = [
                        build_prompt(self.processor, [{"role": "user", "content": to_phi3v_text(text, len(visuals))}])
                        for text, visuals in zip((requests[index].args[0] for index in batch), images, strict=True)
                    ]
                    texts = generate_answers(
                        self.model,
                        self.processor,
                        prompts,
                        images,
                        batch_size=len(batch),
                        max_new_tokens=max_new_tokens,
                        num_crops=self.num_crops,
                        show_progress=False,
                    )
                    for index, text in zip(batch, texts, strict=True):
                        answers[index] = cut_at_stops(text, stops)
                        # lmms-eval's response cache (`--use_cache`) stores what the model answered to a request
                        self.cache_hook.add_partial("generate_until", requests[index].args[:2], answers[index])
                    progress.update(len(batch))
        return answers

    def loglikelihood(self, requests):
        raise NotImplementedError(
            f"{MODEL_NAME} implements generate_until only, the output type of every benchmark of the Phi-3-V model "
            "cards in lmms-eval; this task scores choices by likelihood."
        )

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(f"{MODEL_NAME} implements single-turn generate_until only.")
