"""Open an uploaded photo for the model, or say in plain words why it cannot be used.

Anything can be uploaded to a web page: a PDF, a truncated JPEG, a 20,000 x 20,000 pixel scan that would take
gigabytes to decode. `open_photo` reads the header first and refuses a photo over `max_pixels` before decoding it, so
a huge upload costs nothing, and turns every failure into a `PhotoError` whose message names the file.

Example:

```python
>>> photo = open_photo("uploads/bag.jpg")  # an RGB `PIL.Image`, fully decoded
>>> open_photo("uploads/notes.pdf")
PhotoError: notes.pdf is not an image Pillow can read (JPEG, PNG, WebP, ...).
```
"""

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from phi3v.modeling.image_processing_phi3_v import to_rgb_image
from phi3v.preparation.images import DEFAULT_MAX_PIXELS


# The cap of data preparation: a photo the app accepts is one a prepared dataset could hold.
MAX_PIXELS = DEFAULT_MAX_PIXELS


class PhotoError(ValueError):
    """An upload that is not a usable photo; the message, naming the file, is meant for the person who uploaded it."""


def open_photo(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and decode an image file as RGB, refusing what is not an image, corrupt, or too large.

    Args:
        path (`str` or `os.PathLike`): the uploaded file.
        max_pixels (`int`, *optional*, defaults to 40,000,000, data preparation's cap): the largest width x height
            accepted, checked from the header before any decoding.

    Returns:
        `PIL.Image.Image`: the decoded photo in RGB, converted as training converts it (`to_rgb_image`: the first
            frame of an animation, EXIF rotation applied, transparency composited on white).

    Raises:
        `PhotoError`: when the file is not an image, is larger than `max_pixels`, or cannot be decoded.
    """
    name = Path(path).name
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoError(_too_large(name, width, height, max_pixels))
            image.load()
            return to_rgb_image(image)
    except PhotoError:
        raise
    except Image.DecompressionBombError:
        # Pillow refuses images beyond twice its own limit before we see their size.
        raise PhotoError(f"{name} is too large: over {max_pixels / 1e6:.0f} megapixels.") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{name} is not an image Pillow can read (JPEG, PNG, WebP, ...).") from None
    except (OSError, SyntaxError, ValueError) as error:
        # Truncated or corrupt data shows up only while decoding, as any of these.
        raise PhotoError(f"{name} is a damaged image and could not be decoded ({error}).") from None


def _too_large(name: str, width: int, height: int, max_pixels: int) -> str:
    return (
        f"{name} is too large: {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
        f"{max_pixels / 1e6:.0f} megapixels. Please upload a smaller version."
    )
