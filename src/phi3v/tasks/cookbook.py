"""The Phi-3 Cookbook's three published fine-tuning tasks (DocVQA, Hateful Memes, NLVR2) and its results table.

Prompts, answers and metrics are byte-exact with the Cookbook's `finetune_hf_trainer_{docvqa,hateful_memes,nlvr2}.py`
(see `shared/docs/published_results.md` sections 1.5-1.7):

- DocVQA evaluates `nielsr/docvqa_1200_examples` `test` (200 rows) with `"<|image_1|>\\n{query['en']}\\nAnswer
  briefly."` and ANLS; it trains on the_cauldron `docvqa` (the Cookbook's `--full_train`).
- Hateful Memes and NLVR2 train on the_cauldron `train[500:]` and evaluate the first turn of `train[:500]` with
  `"<|image_1|>\\n{user}"` (NLVR2: `"<|image_1|><|image_2|>\\n{user}"`) and exact-match accuracy.

One difference in training is deliberate: the Cookbook's DocVQA `--full_train` draws one random QA pair of a page at
each visit (`random.choice(texts)`), so an epoch sees each page once with one of its questions; `from_the_cauldron`
trains every QA pair of the page as one multi-turn conversation, so an epoch sees each page once with all of them.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from phi3v.data.converters import from_docvqa, from_the_cauldron
from phi3v.text_metrics import levenshtein_distance


PHI3_VISION = "microsoft/Phi-3-vision-128k-instruct"
PHI35_VISION = "microsoft/Phi-3.5-vision-instruct"
THE_CAULDRON = "HuggingFaceM4/the_cauldron"
DOCVQA_1200 = "nielsr/docvqa_1200_examples"
ANLS_THRESHOLD = 0.5
# The Cookbook's LoRA targets without `--freeze_vision_model`: the language model, lm_head, CLIP and the projector.
# fmt: off
COOKBOOK_LORA_TARGETS = [
    "qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head",
    "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "img_projection.0", "img_projection.2",
]
# fmt: on


def anls(prediction: str, answers: list[str], threshold: float = ANLS_THRESHOLD) -> float:
    """The Cookbook's ANLS of one prediction: the best normalised Levenshtein similarity over the reference answers.

    The prediction is cleaned with `.strip().strip('.')` and nothing else; the answers are used as they are, and the
    comparison is case-sensitive. The distance is divided by the longer string's length, and a similarity counts only
    when that normalised distance is strictly below `threshold`. An empty (cleaned) prediction scores 0.

    Args:
        prediction (`str`): The generated answer.
        answers (`list[str]`): The reference answers.
        threshold (`float`, *optional*, defaults to 0.5): The Cookbook's `tau`.

    Returns:
        `float`: A score in [0, 1]; the published numbers are its mean over the eval set, times 100.
    """
    prediction = prediction.strip().strip(".")
    if not prediction:
        return 0.0
    best = 0.0
    for answer in answers:
        distance = levenshtein_distance(answer, prediction) / max(len(answer), len(prediction))
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def _normalise_for_accuracy(text: str) -> str:
    return text.strip().strip(".").lower()


def cookbook_accuracy(prediction: str, answers: list[str]) -> float:
    """The Cookbook's exact match: 1.0 when the prediction equals an answer after `.strip().strip('.').lower()` on both.

    Args:
        prediction (`str`): The generated answer.
        answers (`list[str]`): The reference answers (the Cookbook has one per item).

    Returns:
        `float`: 1.0 or 0.0; the published numbers are the mean over the eval set, times 100.
    """
    return float(_normalise_for_accuracy(prediction) in {_normalise_for_accuracy(answer) for answer in answers})


@dataclass(frozen=True)
class DataSource:
    """Where a task's rows come from: a Hub dataset (or a `save_to_disk` copy of it), its config and split."""

    name: str
    config: str | None
    split: str
    format: str  # the converter's name, as a recipe's `dataset_format`


def docvqa_eval_item(row: Mapping) -> dict:
    """A `nielsr/docvqa_1200_examples` row as the Cookbook evaluates it: its prompt and all its answers."""
    conversation = from_docvqa(row)
    return {
        "images": conversation["images"],
        "prompt": conversation["messages"][:1],
        "references": list(row["answers"]),
    }


def first_turn_eval_item(row: Mapping) -> dict:
    """A the_cauldron row as the Cookbook evaluates Hateful Memes and NLVR2: the first question, with the images."""
    conversation = from_the_cauldron(row)
    return {
        "images": conversation["images"],
        "prompt": conversation["messages"][:1],
        "references": [row["texts"][0]["assistant"]],
    }


@dataclass(frozen=True)
class CookbookTask:
    """A published task of the Cookbook: how an evaluation row is asked and scored, and where its data come from.

    Args:
        name (`str`): `docvqa`, `hateful_memes` or `nlvr2`, as a recipe's `task`.
        to_eval_item (`Callable`): Converter of an evaluation row to `{"images", "prompt", "references"}`.
        metric (`Callable`): `metric(prediction, references) -> float` in [0, 1] for one item.
        metric_name (`str`): What the published number is (the mean of `metric` times 100).
        train_source ([`DataSource`]): The published training data.
        eval_source ([`DataSource`]): The published evaluation set.
        tolerance (`float`): About two binomial standard errors of the eval set, in points: a reproduction within
            `published +- tolerance` agrees with the table.
        base_score (`float`, *optional*): The untrained model's score on the eval set where one was reported
            (DocVQA: 77.02 for Phi-3-vision-128k-instruct, microsoft/PhiCookBook#121), a check of the "before" run.
    """

    name: str
    to_eval_item: Callable[[Mapping], dict]
    metric: Callable[[str, list[str]], float]
    metric_name: str
    train_source: DataSource
    eval_source: DataSource
    tolerance: float
    base_score: float | None = None


def cauldron_accuracy_task(config: str) -> CookbookTask:
    """A the_cauldron config the Cookbook trains on `train[500:]` and scores by accuracy on `train[:500]`'s first turn
    (Hateful Memes, NLVR2)."""
    return CookbookTask(
        name=config,
        to_eval_item=first_turn_eval_item,
        metric=cookbook_accuracy,
        metric_name="accuracy x100",
        train_source=DataSource(THE_CAULDRON, config, "train[500:]", "the_cauldron"),
        eval_source=DataSource(THE_CAULDRON, config, "train[:500]", "the_cauldron"),
        tolerance=3.0,
    )


TASKS = {
    "docvqa": CookbookTask(
        name="docvqa",
        to_eval_item=docvqa_eval_item,
        metric=anls,
        metric_name="ANLS x100",
        train_source=DataSource(THE_CAULDRON, "docvqa", "train", "the_cauldron"),
        eval_source=DataSource(DOCVQA_1200, None, "test", "docvqa"),
        tolerance=4.0,
        base_score=77.02,
    ),
    "hateful_memes": cauldron_accuracy_task("hateful_memes"),
    "nlvr2": cauldron_accuracy_task("nlvr2"),
}


@dataclass(frozen=True)
class PublishedResult:
    """One bf16 row of the Cookbook's tables, with the settings a recipe must match.

    Args:
        recipe (`str`): The recipe path under `recipes/` that reproduces the row.
        task (`str`): A key of `TASKS`.
        model (`str`): The Hub checkpoint fine-tuned.
        method (`str`): `full`, `frozen-vision` (CLIP, projector and token embeddings frozen), `lora` or `qlora` (4-bit nf4 base).
        value (`float`): The published metric (`TASKS[task].metric_name`).
        learning_rate (`float`): Peak learning rate.
        epochs (`int`): Training epochs.
        lora_r (`int`, *optional*): LoRA rank (LoRA and QLoRA rows).
        lora_alpha (`int`, *optional*): LoRA alpha, absolute (the Cookbook's CLI takes `alpha / r` instead).
        global_batch (`int`, *optional*, defaults to 64): Sequences per optimizer step over all GPUs.
    """

    recipe: str
    task: str
    model: str
    method: str
    value: float
    learning_rate: float
    epochs: int
    lora_r: int | None = None
    lora_alpha: int | None = None
    global_batch: int = 64

    @property
    def eval_set(self) -> str:
        source = TASKS[self.task].eval_source
        return " ".join(part for part in (source.name, source.config, source.split) if part)


# fmt: off
PUBLISHED = [
    PublishedResult("cookbook/docvqa/sft-full.yaml", "docvqa", PHI3_VISION, "full", 83.65, 5e-6, 2),
    PublishedResult("cookbook/docvqa/sft-frozen-vision.yaml", "docvqa", PHI3_VISION, "frozen-vision", 79.19, 1e-4, 2),
    PublishedResult(
        "cookbook/docvqa/sft-lora.yaml", "docvqa", PHI3_VISION, "lora", 82.46, 2e-4, 2, lora_r=32, lora_alpha=16
    ),
    PublishedResult(
        "cookbook/docvqa/sft-qlora.yaml", "docvqa", PHI3_VISION, "qlora", 81.85, 2e-4, 2, lora_r=32, lora_alpha=16
    ),
    PublishedResult("cookbook/hateful-memes/sft-full.yaml", "hateful_memes", PHI3_VISION, "full", 86.4, 5e-5, 2),
    PublishedResult(
        "cookbook/hateful-memes/sft-frozen-vision.yaml", "hateful_memes", PHI3_VISION, "frozen-vision", 79.4, 1e-4, 3
    ),
    PublishedResult(
        "cookbook/hateful-memes/sft-lora.yaml", "hateful_memes", PHI3_VISION, "lora", 86.6, 2e-4, 2,
        lora_r=128, lora_alpha=256,
    ),
    PublishedResult(
        "cookbook/hateful-memes/sft-qlora.yaml", "hateful_memes", PHI3_VISION, "qlora", 84.0, 2e-4, 2,
        lora_r=128, lora_alpha=256,
    ),
    PublishedResult("cookbook/nlvr2/sft-full-phi3.5.yaml", "nlvr2", PHI35_VISION, "full", 89.40, 1e-5, 3),
    PublishedResult(
        "cookbook/nlvr2/sft-frozen-vision-phi3.5.yaml", "nlvr2", PHI35_VISION, "frozen-vision", 89.20, 2e-5, 2
    ),
]
# fmt: on


@dataclass(frozen=True)
class PublishedThroughput:
    """One row of the Cookbook's training-throughput table (FineTuning_Vision.md): Phi-3-vision-128k-instruct on
    DocVQA at `num_crops=16` (about 2,443 tokens per sequence), one sequence per GPU, 8xA100-80GB, bf16.

    Args:
        method (`str`): `full`, `frozen-vision`, `lora` or `qlora`, as [`PublishedResult`].
        flash_attention (`bool`): Whether the row ran with flash-attention 2.
        images_per_second (`float`): Training throughput over the 8 GPUs.
        memory_gb (`float`): Peak GPU memory per GPU, in GB.
        gpus, hardware, num_crops, tokens_per_sequence, per_device_batch: The measurement's conditions, the same for
            every row.
    """

    method: str
    flash_attention: bool
    images_per_second: float
    memory_gb: float
    gpus: int = 8
    hardware: str = "8xA100-80GB"
    num_crops: int = 16
    tokens_per_sequence: int = 2443
    per_device_batch: int = 1

    @property
    def images_per_second_per_gpu(self) -> float:
        return self.images_per_second / self.gpus


# fmt: off
PUBLISHED_THROUGHPUT = [
    PublishedThroughput("full", False, 5.041, 42), PublishedThroughput("full", True, 8.657, 36),
    PublishedThroughput("frozen-vision", False, 17.578, 29), PublishedThroughput("frozen-vision", True, 31.736, 27),
    PublishedThroughput("lora", False, 5.591, 50), PublishedThroughput("lora", True, 12.127, 16),
    PublishedThroughput("qlora", False, 4.831, 32), PublishedThroughput("qlora", True, 10.545, 10),
]
# fmt: on
