import io
import time

import pytest
from PIL import Image

from phi3v.preparation.images import ImageRejected, decode_image
from phi3v.preparation.report import DropReason

from .. import data_helpers_images as images


def decoded(data: bytes) -> Image.Image:
    stored = decode_image(data)
    image = Image.open(io.BytesIO(stored.data))
    assert image.mode == "RGB"
    assert (stored.width, stored.height) == image.size
    return image


def assert_close(pixel, expected, tolerance=12):
    assert all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True)), (pixel, expected)


def test_clean_rgb_jpeg_is_stored_unchanged():
    data = images.jpeg()
    assert decode_image(data).data == data


@pytest.mark.parametrize("make_bytes", [images.png, images.webp])
def test_png_and_webp_become_jpeg_of_the_same_size(make_bytes):
    data = make_bytes()
    image = decoded(data)
    assert image.format == "JPEG"
    assert image.size == Image.open(io.BytesIO(data)).size


def test_rgba_is_composited_on_white():
    image = decoded(images.rgba_png_half_transparent(size=(40, 20)))
    assert_close(image.getpixel((5, 10)), images.RED)
    assert_close(image.getpixel((35, 10)), (255, 255, 255))


def test_palette_transparency_is_composited_on_white():
    image = decoded(images.palette_png_with_transparency(size=(20, 20)))
    assert_close(image.getpixel((2, 10)), images.RED)
    assert_close(image.getpixel((18, 10)), (255, 255, 255))


def test_grey_becomes_rgb_grey():
    assert_close(decoded(images.grey_png(level=90)).getpixel((5, 5)), (90, 90, 90), tolerance=3)


def test_cmyk_becomes_rgb():
    assert_close(decoded(images.cmyk_jpeg()).getpixel((5, 5)), (255, 0, 0), tolerance=20)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    assert Image.open(io.BytesIO(images.sixteen_bit_png(value=40000))).mode.startswith("I")
    assert_close(decoded(images.sixteen_bit_png(value=40000)).getpixel((3, 3)), (156, 156, 156), tolerance=3)


def test_exif_orientation_is_applied():
    image = decoded(images.exif_rotated_jpeg(size=(60, 30)))
    assert image.size == (30, 60)
    assert_close(image.getpixel((15, 5)), images.RED, tolerance=40)
    assert_close(image.getpixel((15, 55)), images.BLUE, tolerance=40)
    assert image.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (images.HTML_PAGE, DropReason.NOT_AN_IMAGE),
        (b"", DropReason.NOT_AN_IMAGE),
        (images.truncated("JPEG"), DropReason.TRUNCATED_IMAGE),
        (images.truncated("PNG"), DropReason.TRUNCATED_IMAGE),
        (images.truncated("WEBP"), DropReason.CORRUPT_IMAGE),  # libwebp refuses the partial file outright
    ],
    ids=["html", "empty", "truncated-jpeg", "truncated-png", "truncated-webp"],
)
def test_unusable_bytes_are_rejected_with_their_reason(data, reason):
    with pytest.raises(ImageRejected) as rejection:
        decode_image(data)
    assert rejection.value.reason == reason


def test_png_bomb_is_rejected_from_its_header_without_decoding():
    bomb = images.png_bomb(30000, 30000)
    assert len(bomb) < 1_000_000
    start = time.perf_counter()
    with pytest.raises(ImageRejected) as rejection:
        decode_image(bomb)
    assert rejection.value.reason == DropReason.TOO_MANY_PIXELS
    assert time.perf_counter() - start < 2  # decoding 900 million pixels would take far longer (and 900 MB)


def test_pixel_cap_is_ours_not_only_pillows():
    with pytest.raises(ImageRejected) as rejection:
        decode_image(images.png(size=(100, 100)), max_pixels=5_000)
    assert rejection.value.reason == DropReason.TOO_MANY_PIXELS
    assert "100x100" in rejection.value.detail
    assert decode_image(images.png(size=(100, 100)), max_pixels=10_000).width == 100


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ((1, 1), DropReason.IMAGE_TOO_SMALL),  # a tracking pixel
        ((400, 13), DropReason.IMAGE_TOO_SMALL),
        ((13, 400), DropReason.IMAGE_TOO_SMALL),
        ((4000, 20), DropReason.EXTREME_ASPECT_RATIO),
        ((20, 4000), DropReason.EXTREME_ASPECT_RATIO),
        ((1345, 14), DropReason.EXTREME_ASPECT_RATIO),
    ],
)
def test_images_the_model_cannot_use_are_rejected_from_their_size(size, reason):
    with pytest.raises(ImageRejected) as rejection:
        decode_image(images.png(size=size))
    assert rejection.value.reason == reason
    assert f"{size[0]}x{size[1]}" in rejection.value.detail


@pytest.mark.parametrize("size", [(14, 14), (1344, 14), (14, 1344)])
def test_images_at_the_usable_limits_are_kept(size):
    assert (decode_image(images.png(size=size)).width, decode_image(images.png(size=size)).height) == size
