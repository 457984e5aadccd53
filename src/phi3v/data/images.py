"""Turning downloaded bytes into the image we store: verified, fully decoded, EXIF-oriented, RGB.

Untrusted bytes are checked in the cheapest order: Pillow identifies the format and reads the size from the header
(no pixels), the pixel cap rejects decompression bombs, and only then are the pixels decoded.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .report import DropReason


DEFAULT_MAX_PIXELS = 40_000_000  # 8000 x 5000; product photos are far smaller, bombs far larger
STORED_JPEG_QUALITY = 95
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageRejected(Exception):
    """Raised when a row's image cannot be used; carries the `DropReason` for the report."""

    def __init__(self, reason: DropReason, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


@dataclass
class StoredImage:
    """The image as it goes into the dataset: encoded bytes of an RGB image and its size."""

    data: bytes
    width: int
    height: int


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any Pillow mode to RGB: transparency is composited on white, 16-bit greys are scaled, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own I;16 -> RGB conversion clips every value above 255 to white; keep the top 8 bits instead.
        grey = (np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> StoredImage:
    """Verifies that `data` is an image Pillow can fully decode and returns it as an EXIF-oriented RGB image.

    Args:
        data (`bytes`):
            The raw bytes, e.g. an HTTP response body.
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`):
            Largest `width * height` accepted, checked from the header before any pixel is decoded. Pillow's own
            decompression-bomb limit (`2 * Image.MAX_IMAGE_PIXELS`) also applies and is reported the same way.

    Returns:
        `StoredImage`: the original bytes when they already are an upright RGB JPEG (no re-encoding loss), otherwise
        the converted image encoded as JPEG (quality 95), with its width and height after EXIF orientation.

    Raises:
        `ImageRejected`: `not_an_image`, `too_many_pixels`, `truncated_image` or `corrupt_image`.
    """
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise ImageRejected(
            DropReason.NOT_AN_IMAGE, f"Pillow cannot identify {len(data)} bytes starting {data[:16]!r}"
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageRejected(DropReason.TOO_MANY_PIXELS, str(error)) from error
    except (OSError, SyntaxError, ValueError) as error:  # a header Pillow recognises but cannot parse
        raise ImageRejected(DropReason.CORRUPT_IMAGE, f"{type(error).__name__}: {error}") from error

    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(DropReason.TOO_MANY_PIXELS, f"{width}x{height} is over the cap of {max_pixels:,} pixels")

    try:
        image.load()
    except OSError as error:
        reason = DropReason.TRUNCATED_IMAGE if "truncated" in str(error).lower() else DropReason.CORRUPT_IMAGE
        raise ImageRejected(reason, f"{image.format}: {error}") from error
    except (SyntaxError, ValueError, EOFError) as error:
        raise ImageRejected(DropReason.CORRUPT_IMAGE, f"{image.format}: {type(error).__name__}: {error}") from error

    orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation; 1 means upright
    if image.format == "JPEG" and image.mode == "RGB" and orientation == 1:
        return StoredImage(data=data, width=width, height=height)

    try:
        upright = ImageOps.exif_transpose(image)
        rgb = to_rgb(upright)
    except (OSError, ValueError) as error:
        raise ImageRejected(
            DropReason.CORRUPT_IMAGE, f"cannot convert {image.format} {image.mode} to RGB: {error}"
        ) from error
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=STORED_JPEG_QUALITY)
    return StoredImage(data=buffer.getvalue(), width=rgb.width, height=rgb.height)
