"""A prepared catalogue written in the other layouts training reads, so every layout has a runnable example:

- `conversational`: TRL's format, a `DatasetDict` (`save_to_disk`) with `images`, `messages` and `product_code`; the
  user turn is the catalogue's own prompt (`<|image_1|>` then the question), so it trains exactly like the catalogue;
- `llava`: one LLaVA JSON file per split (`train.json`, `validation.json`, `test.json`, which `datasets` reads as
  splits) and the photos under `images/`, with `<image>\\n` before the question.

Example:

```python
>>> export_catalogue("data/synthetic", "data/synthetic-llava", "llava")
```
"""

import json
from pathlib import Path

import datasets

from phi3v.data.image_columns import load_image, undecoded
from phi3v.errors import ExistingPathError, UsageError

from .answers import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION, AnswerTemplate, to_conversation


LAYOUTS = ("conversational", "llava")


def export_catalogue(
    catalogue_dir: str | Path,
    output_dir: str | Path,
    layout: str,
    question: str = DEFAULT_QUESTION,
    answer_template: str = DEFAULT_ANSWER_TEMPLATE,
) -> Path:
    """Writes the catalogue at `catalogue_dir` to `output_dir` in `layout`, split by split.

    Args:
        catalogue_dir (`str` or `Path`): a prepared or synthetic catalogue (`save_to_disk`).
        output_dir (`str` or `Path`): where to write; must not exist yet.
        layout (`str`): `conversational` or `llava`.
        question (`str`, *optional*, defaults to `"What is shown in this image?"`): the user's question.
        answer_template (`str`, *optional*): the answer; defaults to the catalogue's default template.
    """
    if layout not in LAYOUTS:
        raise UsageError(f"Unknown layout {layout!r}; choose from {LAYOUTS}.")
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise ExistingPathError(f"{output_dir} exists; choose a new directory.")
    template = AnswerTemplate(answer_template)
    catalogue = datasets.load_from_disk(str(catalogue_dir))
    if layout == "conversational":
        # Undecoded, the photos are copied byte for byte: decoding and re-encoding a JPEG would change its pixels.
        converted = datasets.DatasetDict({name: undecoded(split) for name, split in catalogue.items()}).map(
            lambda row: {**to_conversation(row, question, template), "product_code": row["product_code"]},
            remove_columns=catalogue["train"].column_names,
            features=datasets.Features(
                {
                    "images": datasets.List(datasets.Image()),
                    "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
                    "product_code": datasets.Value("string"),
                }
            ),
        )
        converted.save_to_disk(str(output_dir))
        return output_dir
    (output_dir / "images").mkdir(parents=True)
    for split, rows in catalogue.items():
        records = []
        for row in rows:
            image_path = f"images/{row['product_code']}.png"
            load_image(row["image"]).save(output_dir / image_path)
            records.append(
                {
                    "id": row["product_code"],
                    "image": image_path,
                    "conversations": [
                        {"from": "human", "value": f"<image>\n{question}"},
                        {"from": "gpt", "value": template.render(row)},
                    ],
                }
            )
        (output_dir / f"{split}.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    return output_dir
