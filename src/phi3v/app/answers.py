"""What the page does, without the page: load the models, answer photos with every model, lay the answers out, and
read example photos with their true answers from a prepared dataset.

Every model answers all the photos of one request in one batch (up to `batch_size`), by the same greedy generation
as `scripts/evaluate.py`, so the page shows what the evaluation scored. In the catalogue task the answer is also read
back into the fields of its answer template (title, category, price by default) when all of them are found; other
tasks show the raw answer.

Example:

```python
>>> models = load_models({"sft": "outputs/demo"})
>>> answers = answer_photos(models, [open_photo("bag.jpg")], DEFAULT_QUESTION)
>>> answer_rows(["bag.jpg"], answers, load_task("outputs/demo"))
[['bag.jpg', 'sft', 'Check Tote Bag', 'TOTE BAGS', '1,290.00', 'Product: Check Tote Bag, Category: ...']]
```
"""

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from phi3v.data.image_columns import load_image, undecoded
from phi3v.data.loading import load_splits
from phi3v.data.validation import conversation_check, find_row_problems
from phi3v.errors import DataError
from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import load_for_inference
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks import Task
from phi3v.tasks.catalogue import prompt_messages


NOT_READ = "-"  # a field shown for an answer it could not be read from


class Example(NamedTuple):
    """A photo of the dataset saved as a file for the page, and the answer the dataset gives for it."""

    path: Path
    truth: str


def load_models(
    paths: Mapping[str, str],
    base_model: str | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    attn_implementation: str | None = None,
    load_in_4bit: bool | None = None,
) -> dict[str, tuple]:
    """Load every model for inference (full, merged, or LoRA adapter; see `load_for_inference`).

    Args:
        paths (`Mapping[str, str]`): model name -> checkpoint or adapter directory, in the order to show them.
        base_model (`str`, *optional*): the base checkpoint of adapters, overriding their `adapter_config.json`.
        dtype (`str`, *optional*, defaults to `"auto"`): weight dtype; `"auto"` keeps the checkpoint's.
        device (`str`, *optional*, defaults to `"cpu"`): where to run.
        attn_implementation (`str`, *optional*): the attention implementation; defaults to sdpa.
        load_in_4bit (`bool`, *optional*): `None` loads each base as it was trained (a QLoRA adapter's quantised);
            `True` quantises every base to 4-bit, `False` none.

    Returns:
        `dict[str, tuple]`: model name -> `(model, processor)`.
    """
    models = {}
    for name, path in paths.items():
        # --base_model concerns adapters only; a full checkpoint beside them is loaded as it is.
        adapter_base = base_model if (Path(path) / "adapter_config.json").is_file() else None
        models[name] = load_for_inference(
            path,
            adapter_base,
            dtype=dtype,
            device=device,
            attn_implementation=attn_implementation,
            load_in_4bit=load_in_4bit,
        )
    return models


def check_question(question: str | None) -> str:
    """The question, stripped; `ValueError` with a message for the page when it is empty or holds special tokens."""
    question = (question or "").strip()
    if not question:
        raise ValueError("Please type a question.")
    if "<|" in question:
        raise ValueError("The question cannot contain special tokens such as <|image_1|>; the photo goes before it.")
    return question


def answer_photos(
    models: Mapping[str, tuple],
    photos: Sequence,
    question: str,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    num_crops: int | None = None,
) -> dict[str, list[str]]:
    """Every model's greedy answer to `question` about every photo.

    Args:
        models (`Mapping[str, tuple]`): model name -> `(model, processor)`, e.g. from `load_models`.
        photos (`Sequence`): RGB photos, e.g. from `open_photo`.
        question (`str`): the question asked about each photo.
        batch_size (`int`, *optional*, defaults to 8): photos per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to 64): generation budget.
        num_crops (`int`, *optional*): overrides the processor's number of HD crops.

    Returns:
        `dict[str, list[str]]`: model name -> one answer per photo.
    """
    answers = {}
    for name, (model, processor) in models.items():
        prompts = [build_prompt(processor, prompt_messages(question))] * len(photos)
        answers[name] = generate_answers(
            model,
            processor,
            prompts,
            [[photo] for photo in photos],
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            num_crops=num_crops,
            show_progress=False,
        )
    return answers


def table_headers(task: Task) -> list[str]:
    """The columns of `answer_rows`: photo, model, the fields the task reads from an answer (the catalogue's template
    fields; none for free text), and the answer."""
    return ["photo", "model", *task.answer_fields, "answer"]


def answer_rows(photo_names: Sequence[str], answers_by_model: Mapping[str, Sequence[str]], task: Task) -> list[list]:
    """One row per photo and model, the models of a photo next to each other, with the columns of `table_headers`.

    The task's fields are filled when the answer has all of them (`Task.parse`), and show `-` otherwise; the raw
    answer is always there.
    """
    rows = []
    for index, photo_name in enumerate(photo_names):
        for model_name, answers in answers_by_model.items():
            answer = answers[index]
            parsed = task.parse(answer)
            complete = None not in parsed.values()
            fields = [task.format_field(value) if complete else NOT_READ for value in parsed.values()]
            rows.append([photo_name, model_name, *fields, answer])
    return rows


def load_examples(
    dataset_path: str | Path,
    output_dir: str | Path,
    task: Task,
    split: str = "test",
    limit: int = 8,
    allow_local_paths: bool = False,
) -> list:
    """Save the first `limit` photos of a dataset's split as JPEG files, with their true answers.

    Args:
        dataset_path (`str` or `Path`): a dataset `load_splits` reads, in any layout; its image references are checked
            first (`phi3v.data.local_files`).
        output_dir (`str` or `Path`): where to write the photos (the page serves them from there).
        task ([`~phi3v.tasks.Task`]): asks the rows (`Task.eval_items`): a row's true answer is its item's reference
            (a catalogue row's rendered with the answer template, a conversation's last assistant turn).
        split (`str`, *optional*, defaults to `"test"`): the split to take them from.
        limit (`int`, *optional*, defaults to 8): how many.
        allow_local_paths (`bool`, *optional*, defaults to `False`): let a local dataset's rows name image files
            outside its folder.

    Returns:
        `list[Example]`: the saved photos and their true answers, in the split's order.
    """
    rows = load_splits(str(dataset_path), [split], allow_local_paths=allow_local_paths)[split]
    rows = rows.select(range(min(limit, len(rows))))
    layout, converter = task.row_converter(rows.column_names, str(dataset_path))
    skipped = find_row_problems(rows, split, conversation_check(converter))
    for problem in skipped:
        print(f"Not offering an example that cannot be asked: {problem}", file=sys.stderr)
    items = task.eval_items(list(undecoded(rows)), layout, converter, skip_rows={problem.row for problem in skipped})
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    examples = []
    for index, item in enumerate(items):
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", item["id"]).strip("_") or str(index)
        path = output_dir / f"{index:03d}-{name}.jpg"
        if not item["images"]:
            raise DataError(f"Row {index} of split {split!r} of {dataset_path} has no image to offer as an example.")
        load_image(item["images"][0]).convert("RGB").save(path, quality=90)
        examples.append(Example(path, item["references"][0]))
    return examples
