"""Images in dataset columns without decoding them: sizes from file headers, pixels only when a batch needs them.

`datasets` decodes every `Image` cell it reads. Counting tokens for length grouping, or listing an evaluation's
prompts, needs only each image's size, which PIL reads from the file header. `undecoded` casts a dataset's image
columns (`Image`, or a list of `Image`) to `decode=False`, so its cells are `{"bytes", "path"}` dicts; `image_size`
reads their size (after EXIF rotation, as the image processor sees them) and `load_image` decodes one when needed.
"""

import io
from pathlib import Path

import datasets
from PIL import Image


# EXIF orientations 5-8 turn the picture by 90 degrees: the processor (which applies them) sees width and height swapped.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


def undecoded(dataset: datasets.Dataset) -> datasets.Dataset:
    """`dataset` with its image columns (`Image` or a list of `Image`) cast to `decode=False`; no pixels are read, and
    nothing is written (the rows are the same Arrow data, read with other features).

    Args:
        dataset (`datasets.Dataset`): any dataset; columns that hold no images are left as they are.
    """
    features = dataset.features.copy()
    changed = False
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            features[name] = datasets.Image(decode=False)
            changed = True
        elif isinstance(feature, datasets.List | datasets.Sequence | datasets.LargeList) and isinstance(
            feature.feature, datasets.Image
        ):
            features[name] = datasets.List(datasets.Image(decode=False))
            changed = True
    if not changed:
        return dataset
    # The same Arrow data read with other features: `cast` would write a cache file beside a `save_to_disk` dataset.
    info = dataset.info.copy()
    info.features = features
    return datasets.Dataset(dataset.data, info=info, split=dataset.split, indices_table=dataset._indices)


def open_image(value) -> Image.Image:
    """A PIL image from a dataset cell (`{"bytes", "path"}` or a decoded image) or a file path, opened lazily (the
    header is read, the pixels are not)."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, str | Path):
        return Image.open(value)
    if isinstance(value, dict) and (value.get("bytes") is not None or value.get("path")):
        return Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") is not None else Image.open(value["path"])
    raise TypeError(f"Not an image: {type(value).__name__} {str(value)[:80]!r}")


def image_size(value) -> tuple[int, int]:
    """`(width, height)` of an image as the image processor will see it (EXIF rotation applied), from the header."""
    image = open_image(value)
    width, height = image.size
    if _orientation(image) in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return width, height


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation, read without decoding pixels (PIL's `getexif` loads a whole PNG to look for it)."""
    if image.format != "PNG":
        return image.getexif().get(_EXIF_ORIENTATION)
    exif = Image.Exif()
    if image.info.get("exif"):  # an eXIf chunk before the pixel data
        exif.load(image.info["exif"])
    return exif.get(_EXIF_ORIENTATION)


def load_image(value) -> Image.Image:
    """A decoded PIL image from a dataset cell, a path or a PIL image (which is returned as it is)."""
    if isinstance(value, Image.Image):
        return value
    image = open_image(value)
    image.load()
    return image
