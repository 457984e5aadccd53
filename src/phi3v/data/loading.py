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

from collections.abc import Mapping
from pathlib import Path

import datasets

from phi3v.errors import DataError, MissingPathError, UsageError

from .local_files import LocalFiles, check_image_references
from .tables import check_delimiter, check_encoding, open_csv


# Builders of `datasets` for local files, by suffix.
FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def select_split(available: Mapping[str, datasets.Dataset], split: str, dataset_name: str) -> datasets.Dataset:
    """The rows a split string names, read by `datasets`' own split parsing (`datasets.ReadInstruction`): a split name
    with an optional slice of indices or percentages (`train[500:]`, `train[:10%]`), or several joined by `+`.

    Args:
        available (`Mapping[str, datasets.Dataset]`): the dataset's splits by name.
        split (`str`): the split string.
        dataset_name (`str`): the dataset, for the messages.

    Raises:
        `UsageError`: for a split string `datasets` does not read, naming the available splits when a split does not
            exist, or naming the split when it (or its slice) is empty.
    """
    try:
        instruction = datasets.ReadInstruction.from_spec(split.strip())
    except ValueError as error:
        raise UsageError(
            f"Bad split {split!r}; expected a name with an optional slice, e.g. `train` or `train[500:]` ({error})."
        ) from None
    names = [part.split("[")[0] for part in instruction.to_spec().split("+")]
    if missing := [name for name in names if name not in available]:
        raise UsageError(f"{dataset_name} has no split {missing[0]!r}; its splits are {sorted(available)}.")
    try:
        parts = instruction.to_absolute({name: len(rows) for name, rows in available.items()})
    except ValueError as error:  # e.g. `pct1_dropremainder` rounding on a split of fewer than 100 rows
        raise UsageError(f"Bad split {split!r} of {dataset_name}: {error}") from None
    # `select` refuses an empty range that starts past the end: an empty slice selects an empty list instead.
    selected = [
        available[part.splitname].select(range(part.from_, part.to) if part.from_ < part.to else []) for part in parts
    ]
    rows = selected[0] if len(selected) == 1 else datasets.concatenate_datasets(selected)
    if len(rows) == 0:
        before = sum(len(available[part.splitname]) for part in parts)
        raise UsageError(f"Split {split!r} of {dataset_name} is empty ({before} rows before slicing).")
    return rows


def looks_local(name: str) -> bool:
    """Whether a dataset name is meant as a local path (it exists, names a data file, or starts like a path)."""
    path = Path(name).expanduser()
    return path.exists() or path.suffix in FILE_BUILDERS or name.startswith(("/", "./", "../", "~"))


def _read_files(path: Path, read):
    """`read()`, with a data file `datasets` cannot parse (broken JSON, a ragged CSV) reported as the data's problem."""
    try:
        return read()
    except datasets.exceptions.DatasetGenerationError as error:
        raise DataError(f"Cannot read the data file(s) at {path}: {error.__cause__ or error}") from error


def load_splits(
    dataset_name: str,
    splits: list[str],
    dataset_config: str | None = None,
    image_folder: str | None = None,
    allow_local_paths: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> dict[str, datasets.Dataset]:
    """The named splits of a dataset, in the order asked.

    Args:
        dataset_name (`str`): a directory written by `save_to_disk` (a `DatasetDict`, or one `Dataset` read as
            split `train`), a directory of data files named by split (`train.json`, `test.json`), a local data file (`.parquet`, `.jsonl`, `.json`, `.csv`; its rows are split `train`), or
            a Hub dataset id.
        splits (`list[str]`): split names with optional slices, e.g. `["train[500:]", "train[:500]"]`, as `datasets`
            reads them (`select_split`).
        dataset_config (`str`, *optional*): the Hub dataset's configuration name (e.g. `hateful_memes`).
        image_folder (`str`, *optional*): the folder the user named for the rows' images (LLaVA).
        allow_local_paths (`bool`, *optional*, defaults to `False`): let a local dataset's rows name image files
            outside its folder (`phi3v.data.local_files`; a Hub dataset never reads local files).
        encoding (`str`, *optional*): the encoding of local CSV files, instead of detecting it (`phi3v.data.tables`).
        delimiter (`str`, *optional*): the delimiter of local CSV files, instead of detecting it.

    Raises:
        `MissingPathError`: for a local path that does not exist. `UsageError`: naming the available splits when a
            split does not exist, or naming the split when it (or its slice) is empty. `DataError`: for rows that name
            image files they may not read (`phi3v.data.local_files.check_image_references`), or for a CSV file that
            cannot be read as it is (`phi3v.data.tables.open_csv`: the file, the line and what to pass).
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
        data_files = datasets.data_files.DataFilesDict.from_patterns(
            datasets.data_files.get_data_patterns(str(path)), base_path=str(path)
        )
        available = _read_files(path, lambda: _load_files(path, dict(data_files), encoding, delimiter))
    elif path.is_file():
        if path.suffix not in FILE_BUILDERS:
            raise UsageError(f"Cannot read {path}: the data file formats are {sorted(FILE_BUILDERS)}.")
        available = _read_files(path, lambda: _load_files(path, {"train": [str(path)]}, encoding, delimiter))
    else:
        try:
            available = datasets.load_dataset(dataset_name, name=dataset_config)
        except datasets.exceptions.DatasetNotFoundError as error:
            raise MissingPathError(
                f"Dataset {dataset_name} is neither a local path nor a Hub dataset: {error}"
            ) from error
    result = {split: select_split(available, split, dataset_name) for split in splits}
    check_image_references(result, LocalFiles.of(dataset_name, image_folder, allow_local_paths))
    return result


def _load_files(
    dataset_path: Path, data_files: dict[str, list[str]], encoding: str | None, delimiter: str | None
) -> datasets.DatasetDict:
    """The splits of local data files, each split's files listed; CSV files read as `open_csv` found them: every line
    checked, with the one encoding and delimiter they share."""
    encoding, delimiter = check_encoding(encoding), check_delimiter(delimiter)
    files = [Path(file) for split_files in data_files.values() for file in split_files]
    if any(file.suffix != ".csv" for file in files):
        if encoding or delimiter:
            raise UsageError(f"--encoding and --delimiter are for CSV files; {dataset_path} is not CSV.")
        return (
            datasets.load_dataset(str(dataset_path))
            if dataset_path.is_dir()
            else datasets.load_dataset(FILE_BUILDERS[dataset_path.suffix], data_files=str(dataset_path))
        )
    tables = [open_csv(file, encoding, delimiter) for file in files]
    for table in tables:
        if table.num_rows == 0:
            raise DataError(f"{table.path} has a header but no rows.")
        if table.read_options() != tables[0].read_options():
            raise DataError(
                f"{tables[0].path} and {table.path} are read differently ({tables[0].describe()} and "
                f"{table.describe()}); save them alike, or pass --encoding and --delimiter."
            )
    try:
        loaded = datasets.load_dataset("csv", data_files=data_files, **tables[0].read_options())
    except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
        raise DataError(f"Cannot read {dataset_path} as CSV: {error.__cause__ or error}") from None
    # pandas reads the same records as `open_csv`; a difference would be rows read wrong, never passed on.
    if (read := sum(map(len, loaded.values()))) != (checked := sum(table.num_rows for table in tables)):
        raise DataError(f"{dataset_path}: {checked} records checked but {read} rows read; pass --delimiter.")
    return loaded
