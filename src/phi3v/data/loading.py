"""Loading the splits a run names, from wherever the data is: a `save_to_disk` directory, a local Parquet / JSON Lines
/ JSON / CSV file, or a Hub dataset (with its configuration), with `datasets`' split slicing (`train[500:]`,
`train[:500]`, `train[:10%]`) everywhere.

Example:

```python
>>> splits = load_splits("HuggingFaceM4/the_cauldron", ["train[500:]", "train[:500]"], "hateful_memes")
>>> splits = load_splits("data/synthetic", ["train", "validation"])
>>> splits = load_splits("my_data/llava.json", ["train[:90%]", "train[90%:]"])
```
"""

import re
from pathlib import Path

import datasets

from phi3v.errors import MissingPathError, UsageError

from .local_files import LocalFiles, check_image_references


# Builders of `datasets` for local files, by suffix.
FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
_SPLIT = re.compile(r"^(?P<name>[\w.-]+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """`"train[500:]"` -> `("train", "500", None)`; `"test"` -> `("test", None, None)`.

    Raises:
        `UsageError`: for a split string `datasets` would not read either.
    """
    match = _SPLIT.match(split.strip())
    if match is None:
        raise UsageError(
            f"Bad split {split!r}; expected a name with an optional slice, e.g. `train` or `train[500:]`."
        )
    return match["name"], match["start"], match["stop"]


def select_slice(dataset: datasets.Dataset, start: str | None, stop: str | None) -> datasets.Dataset:
    """Rows `start:stop` of a dataset, where each bound is an index or a percentage (`"10%"`), as `datasets` reads
    split slices."""

    def position(bound: str | None) -> int | None:
        if bound is None:
            return None
        if bound.endswith("%"):
            return round(len(dataset) * int(bound[:-1]) / 100)
        return int(bound)

    rows = range(len(dataset))[slice(position(start), position(stop))]
    return dataset.select(list(rows) if not rows else rows)  # `datasets` refuses an empty range past the end


def looks_local(name: str) -> bool:
    """Whether a dataset name is meant as a local path (it exists, names a data file, or starts like a path)."""
    path = Path(name).expanduser()
    return path.exists() or path.suffix in FILE_BUILDERS or name.startswith(("/", "./", "../", "~"))


def load_splits(
    dataset_name: str,
    splits: list[str],
    dataset_config: str | None = None,
    image_folder: str | None = None,
    allow_local_paths: bool = False,
) -> dict[str, datasets.Dataset]:
    """The named splits of a dataset, in the order asked.

    Args:
        dataset_name (`str`): a directory written by `save_to_disk` (a `DatasetDict`, or one `Dataset` read as
            split `train`), a directory of data files named by split (`train.json`, `test.json`), a local data file (`.parquet`, `.jsonl`, `.json`, `.csv`; its rows are split `train`), or
            a Hub dataset id.
        splits (`list[str]`): split names with optional slices, e.g. `["train[500:]", "train[:500]"]`.
        dataset_config (`str`, *optional*): the Hub dataset's configuration name (e.g. `hateful_memes`).
        image_folder (`str`, *optional*): the folder the user named for the rows' images (LLaVA).
        allow_local_paths (`bool`, *optional*, defaults to `False`): let a local dataset's rows name image files
            outside its folder (`phi3v.data.local_files`; a Hub dataset never reads local files).

    Raises:
        `MissingPathError`: for a local path that does not exist. `UsageError`: naming the available splits when a
            split does not exist, or naming the split when it (or its slice) is empty. `DataError`: for rows that name
            image files they may not read (`phi3v.data.local_files.check_image_references`).
    """
    if not dataset_name:
        raise UsageError("Set `dataset_name`: a prepared directory, a local data file or a Hub dataset id.")
    path = Path(dataset_name).expanduser()
    if looks_local(dataset_name) and not path.exists():
        raise MissingPathError(f"Dataset {dataset_name} does not exist.")
    if path.is_dir() and any((path / name).is_file() for name in ("dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(str(path))
        available = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    elif path.is_dir():  # data files named by split (train.json, test.jsonl, ...), as `datasets` finds them
        available = datasets.load_dataset(str(path))
    elif path.is_file():
        if path.suffix not in FILE_BUILDERS:
            raise UsageError(f"Cannot read {path}: the data file formats are {sorted(FILE_BUILDERS)}.")
        available = datasets.load_dataset(FILE_BUILDERS[path.suffix], data_files=str(path))
    else:
        try:
            available = datasets.load_dataset(dataset_name, name=dataset_config)
        except datasets.exceptions.DatasetNotFoundError as error:
            raise MissingPathError(
                f"Dataset {dataset_name} is neither a local path nor a Hub dataset: {error}"
            ) from error
    result = {}
    for split in splits:
        name, start, stop = parse_split(split)
        if name not in available:
            raise UsageError(f"{dataset_name} has no split {name!r}; its splits are {sorted(available)}.")
        result[split] = select_slice(available[name], start, stop)
        if len(result[split]) == 0:
            raise UsageError(
                f"Split {split!r} of {dataset_name} is empty ({len(available[name])} rows before slicing)."
            )
    check_image_references(result, LocalFiles.of(dataset_name, image_folder, allow_local_paths))
    return result
