"""Turning downloaded bytes into the image we store: verified, fully decoded, EXIF-oriented, RGB.

Untrusted bytes are checked in the cheapest order: Pillow identifies the format and reads the size from the header
(no pixels), the pixel cap rejects decompression bombs, the shape check rejects images the model cannot use, and only
then are the pixels decoded. The RGB conversion is the image processor's own (`to_rgb_image`), so the stored image is
what the model would make of the original file at prediction time (up to the JPEG encoding of converted images).
"""

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ..modeling.image_processing_phi3_v import to_rgb_image
from .report import DropReason


DEFAULT_MAX_PIXELS = 40_000_000  # 8000 x 5000; product photos are far smaller, bombs far larger
STORED_JPEG_QUALITY = 95
# The model reads images through 14-pixel CLIP patches. An image whose short side is under one patch (a 1x1 tracking
# pixel, a 300x5 rule line) holds less than one patch of content in that direction.
MIN_IMAGE_SIDE = 14
# At Phi-3.5-vision's 4 crops of 336 px, the HD transform resizes the long side to at most 1344 px; above 96:1 the
# short side ends under 1344 / 96 = 14 px, less than one patch row, and the model sees a white strip.
MAX_ASPECT_RATIO = 96


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


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> StoredImage:
    """Verifies that `data` is an image Pillow can fully decode and returns it as an EXIF-oriented RGB image.

    Args:
        data (`bytes`):
            The raw bytes, e.g. an HTTP response body.
        max_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_PIXELS`):
            Largest `width * height` accepted, checked from the header before any pixel is decoded. Pillow's own
            decompression-bomb limit (`2 * Image.MAX_IMAGE_PIXELS`) also applies and is reported the same way.

    Images the model cannot use are rejected from their header size, before decoding: a short side under
    `MIN_IMAGE_SIDE` (14 px, one CLIP patch) is `image_too_small`; a long side over `MAX_ASPECT_RATIO` (96) times the
    short side is `extreme_aspect_ratio` (at Phi-3.5-vision's 4 crops the short side would shrink under one patch).
    The image processor itself handles any size; these rows are reported because they cannot teach anything.

    Returns:
        `StoredImage`: the original bytes when they already are an upright RGB JPEG (no re-encoding loss), otherwise
        the converted image encoded as JPEG (quality 95), with its width and height after EXIF orientation.

    Raises:
        `ImageRejected`: `not_an_image`, `too_many_pixels`, `image_too_small`, `extreme_aspect_ratio`,
        `truncated_image` or `corrupt_image`.
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
    short_side, long_side = sorted((width, height))
    if short_side < MIN_IMAGE_SIDE:
        raise ImageRejected(
            DropReason.IMAGE_TOO_SMALL, f"{width}x{height}: the short side is under {MIN_IMAGE_SIDE} pixels"
        )
    if long_side > MAX_ASPECT_RATIO * short_side:
        raise ImageRejected(
            DropReason.EXTREME_ASPECT_RATIO,
            f"{width}x{height} is {long_side / short_side:.0f}:1, over {MAX_ASPECT_RATIO}:1",
        )

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
        rgb = to_rgb_image(image)
    except (OSError, ValueError) as error:
        raise ImageRejected(
            DropReason.CORRUPT_IMAGE, f"cannot convert {image.format} {image.mode} to RGB: {error}"
        ) from error
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=STORED_JPEG_QUALITY)
    return StoredImage(data=buffer.getvalue(), width=rgb.width, height=rgb.height)
