"""The dataset formats (layouts) training and evaluation read: which one a dataset is in, and the function that turns
its rows into TRL's conversational format, which `phi3v.data.conversation` reads into the encoder's `Conversation`.
The converters are in `phi3v.data.converters`; the catalogue's is the catalogue task's own (it renders the recipe's
question and answer template, `phi3v.tasks.catalogue.to_conversation`) and is passed in.

| `dataset_format` | columns | becomes |
| --- | --- | --- |
| `conversational` | `images`/`image` + `messages`, or + `prompt`/`completion` | as it is (TRL's format) |
| `catalogue` | `image` + `title`, `category3_code`, `full_price`, ... | question, then the rendered `answer_template` |
| `the_cauldron` | `images` + `texts: [{user, assistant, source}]` | every turn; the images on the first |
| `llava` | `image` (path or paths) + `conversations: [{from, value}]` with `<image>` | `<image>` -> `<|image_k|>` |
| `docvqa` | `image` + `query` + `answers` | `<|image_1|>\\n{query}\\nAnswer briefly.` -> the first answer |

`auto` (the default) picks the format from the columns, in the order of the table.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

from phi3v.errors import DataError, UsageError

from .converters import from_docvqa, from_llava, from_the_cauldron


FORMATS = ("auto", "conversational", "catalogue", "the_cauldron", "llava", "docvqa")
_COLUMNS = {
    "catalogue": {"image", "title", "category3_code", "full_price"},
    "the_cauldron": {"images", "texts"},
    "llava": {"conversations"},
    "docvqa": {"image", "query", "answers"},
}


def detect_format(columns: Sequence[str]) -> str:
    """The layout of a dataset with these columns.

    Raises:
        `ValueError`: naming the columns when no layout fits.
    """
    columns = set(columns)
    if "messages" in columns or {"prompt", "completion"} <= columns:
        return "conversational"
    for name, needed in _COLUMNS.items():
        if needed <= columns:
            return name
    raise DataError(
        f"Cannot tell the layout of a dataset with columns {sorted(columns)}. Set `dataset_format` to one of "
        f"{list(FORMATS[1:])}; TRL's conversational format needs `images` plus `messages` or `prompt`/`completion`."
    )


def row_converter(
    dataset_format: str,
    columns: Sequence[str],
    catalogue_converter: Callable[[Mapping], dict] | None = None,
    image_folder: str | Path | None = None,
) -> tuple[str, Callable[[Mapping], dict] | None]:
    """The format of a dataset and the function from one of its rows to TRL's conversational format (`None` when
    the rows are in that format already).

    Args:
        dataset_format (`str`): one of `FORMATS`; `auto` detects it from `columns`.
        columns (`Sequence[str]`): the dataset's column names, checked against the format's.
        catalogue_converter (`Callable`, *optional*): the catalogue task's converter (question and answer template
            bound), needed for `catalogue`.
        image_folder (`str` or `Path`, *optional*): where relative LLaVA image paths are resolved.

    Raises:
        `ValueError`: for an unknown format, or columns the format needs that the dataset lacks.
    """
    if dataset_format not in FORMATS:
        raise UsageError(f"Unknown dataset_format {dataset_format!r}; choose from {list(FORMATS)}.")
    if dataset_format == "auto":
        dataset_format = detect_format(columns)
    missing = sorted(_COLUMNS.get(dataset_format, set()) - set(columns))
    if dataset_format == "conversational" and detect_format(columns) != "conversational":
        missing = ["messages (or prompt and completion)"]
    if missing:
        raise DataError(
            f"dataset_format {dataset_format!r} needs the columns {missing}; the dataset has {sorted(columns)}."
        )
    converters = {
        "conversational": None,
        "catalogue": catalogue_converter,
        "the_cauldron": from_the_cauldron,
        "llava": partial(from_llava, image_folder=image_folder),
        "docvqa": from_docvqa,
    }
    return dataset_format, converters[dataset_format]
