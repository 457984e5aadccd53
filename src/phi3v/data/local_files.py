"""Which local image files a dataset's rows may name, checked over every row before any model loads.

A row gives an image either as bytes it carries (an `Image` cell with `bytes`) or by reference: a path-only cell
(`{"bytes": None, "path": ...}`, a form a Hub Parquet file can store), a path string (TRL `images`, LLaVA `image`,
an image part's `image`) or a `file://` URL. References are resolved as they would be opened: LLaVA paths against
`image_folder`, else the dataset file's folder; the others as they are. The rule, one for every script:

- a **remote** dataset (a Hub id) never has a local file read: every reference but an `http(s)` URL is refused,
  unless it lies inside an `image_folder` the user named (LLaVA datasets whose images are downloaded apart);
- a **local** dataset reads files inside its own folder (the `save_to_disk` directory, the folder of its data files)
  or the `image_folder` the user named; anywhere else only with `allow_local_paths`.

`check_image_references` reads the rows' image columns as Arrow (no file is opened, no image decoded) and raises one
`DataError` that names the split, row, column and path of the first offending rows, their total, and the way out.
Reports show only the images `LocalFiles.carried` accepts: bytes in the row, or a file inside the dataset's folders.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from phi3v.errors import DataError


LISTED_REFERENCES = 5  # the first rows named in the error; the total is given too
_IMAGE_COLUMNS = ("image", "images")
_MESSAGE_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected")


@dataclass(frozen=True)
class LocalFiles:
    """Where a dataset's rows may read image files from.

    Args:
        dataset_name (`str`): the dataset as the user named it.
        remote (`bool`): whether it is a Hub dataset.
        folders (`tuple[Path, ...]`): resolved folders its rows may read (its own, and an explicit `image_folder`).
        base (`Path`): what relative LLaVA paths are resolved against.
        allow_local_paths (`bool`): a local dataset may read files anywhere.
    """

    dataset_name: str
    remote: bool
    folders: tuple[Path, ...]
    base: Path
    allow_local_paths: bool = False

    @classmethod
    def of(cls, dataset_name: str, image_folder: str | None = None, allow_local_paths: bool = False) -> "LocalFiles":
        """The rule for a dataset: remote unless its name looks like a local path (`phi3v.data.loading.looks_local`).

        Args:
            dataset_name (`str`): a local directory or data file, or a Hub id.
            image_folder (`str`, *optional*): a folder the user named for the rows' images.
            allow_local_paths (`bool`, *optional*, defaults to `False`): the user's opt-in (local datasets only).
        """
        from .loading import looks_local  # loading calls this module

        path = Path(dataset_name).expanduser()
        remote = not looks_local(dataset_name)
        own = None if remote else (path if path.is_dir() else path.parent)
        folders = tuple(folder.resolve() for folder in (own, image_folder and Path(image_folder)) if folder)
        base = Path(image_folder) if image_folder else (own if own is not None else path)
        return cls(dataset_name, remote, folders, base, allow_local_paths and not remote)

    def inside(self, path: Path) -> bool:
        """Whether `path` (resolved, symbolic links followed) lies in one of the allowed folders."""
        resolved = path.resolve()
        return any(folder == resolved or folder in resolved.parents for folder in self.folders)

    def problem(self, reference: str, llava: bool = False) -> str | None:
        """Why the rows may not read `reference`, or `None` when they may.

        Args:
            reference (`str`): a path or URL, as the row gives it.
            llava (`bool`, *optional*): a LLaVA path, resolved against `base` when relative.
        """
        try:
            parts = urlsplit(reference)
        except ValueError:
            return "not a path or URL that can be checked"
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return None  # not a local file
        if scheme not in ("", "file") and len(scheme) > 1:  # one letter: a Windows drive
            return None if self.allow_local_paths else f"a {scheme}: URL, which may read local files"
        if self.allow_local_paths:
            return None
        path = Path(url2pathname(parts.path)) if scheme == "file" else Path(reference)
        if llava and not path.is_absolute():
            path = self.base / path
        if self.inside(path):
            return None
        if self.remote:
            return "a local file named by a Hub dataset"
        return f"outside the dataset's folder ({', '.join(map(str, self.folders))})"

    def carried(self, image) -> bool:
        """Whether a report may show `image`: bytes the row carried, or a file inside the dataset's folders (never a
        file read from elsewhere, even with `allow_local_paths`)."""
        if isinstance(image, Mapping):
            if image.get("bytes") is not None:
                return True
            path = image.get("path")
        else:  # a PIL image: `filename` is set when it was opened from a file, empty when decoded from bytes
            path = getattr(image, "filename", None) if not isinstance(image, str | Path) else image
        return not path or self.inside(Path(path))


def check_image_references(splits: Mapping[str, datasets.Dataset], files: LocalFiles) -> None:
    """Refuses the dataset when a row names an image the rule does not let it read (see the module docstring).

    Args:
        splits (`Mapping[str, datasets.Dataset]`): the splits a run reads, by the name the user gave them.
        files ([`LocalFiles`]): the dataset's rule.

    Raises:
        `DataError`: listing split, row, column, path and reason of the first `LISTED_REFERENCES` offending
            references, their total, and how to use the dataset.
    """
    found = []
    for split_name, split in splits.items():
        llava = "conversations" in split.column_names
        for column, row, reference in image_references(split):
            why = files.problem(reference, llava=llava and column == "image")
            if why is not None:
                found.append(f"  split {split_name!r}, row {row}, column {column!r}: {reference!r} ({why})")
    if not found:
        return
    if files.remote:
        way_out = (
            "A Hub dataset's rows must carry their images as bytes; its files are never read from this machine. "
            "Download the data, check it, and use the local copy."
        )
    else:
        way_out = (
            "Move the images into the dataset's folder, name their folder with --image_folder, or pass "
            "--allow_local_paths (`allow_local_paths: true` in a recipe) to read them where they are."
        )
    listed = "\n".join(found[:LISTED_REFERENCES])
    if len(found) > LISTED_REFERENCES:
        listed += f"\n  ... and {len(found) - LISTED_REFERENCES} more"
    raise DataError(
        f"{len(found)} image reference(s) of {files.dataset_name} name files its rows may not read:\n{listed}\n"
        f"{way_out}"
    )


def image_references(split: datasets.Dataset) -> Iterator[tuple[str, int, str]]:
    """`(column, row, reference)` for every image a split's rows give by path or URL rather than by bytes.

    `Image` columns are read as Arrow (only the `path` of cells without `bytes`); other image columns and the image
    parts of message columns are read as Python values, which hold no pixels.
    """
    table = split.with_format("arrow")
    for column in split.column_names:
        feature = split.features[column]
        inner = feature.feature if isinstance(feature, datasets.List | datasets.Sequence) else feature
        if isinstance(inner, datasets.Image):
            yield from _image_cells(column, table[column], listed=inner is not feature)
        elif column in _IMAGE_COLUMNS or (column in _MESSAGE_COLUMNS and "image" in str(feature)):
            for row, value in enumerate(table[column].to_pylist()):
                yield from ((column, row, reference) for reference in _references(value, column))


def _image_cells(column: str, values, listed: bool) -> Iterator[tuple[str, int, str]]:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    rows = pc.list_parent_indices(values).to_pylist() if listed else None
    cells = values.flatten() if listed else values
    paths = cells.field("path").to_pylist()
    without_bytes = cells.field("bytes").is_null().to_pylist()
    for index, (path, missing) in enumerate(zip(paths, without_bytes, strict=True)):
        if missing and path:
            yield column, rows[index] if listed else index, path


def _references(value, column: str) -> Iterator[str]:
    """The path or URL references in one cell: a string, a `{bytes, path}` dict, a list of them, or messages whose
    content parts are `{"type": "image", "image": ...}`."""
    if isinstance(value, str):
        if column in _IMAGE_COLUMNS:
            yield value
    elif isinstance(value, Mapping):
        if {"bytes", "path"} <= value.keys():
            if value["bytes"] is None and value["path"]:
                yield value["path"]
        elif value.get("type") == "image" and value.get("image") is not None:
            yield from _references(value["image"], "image")
        elif isinstance(value.get("content"), list):
            yield from _references(value["content"], column)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item, column)
