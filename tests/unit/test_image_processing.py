"""The HD image transform: token counts, normalisation, crop layout and every kind of input image."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from phi3v import Phi3VImageProcessor
from phi3v.modeling.image_processing_phi3_v import hd_padded_size, hd_resized_size, hd_scale, to_rgb_image


# phi3v_spec.md §5: (width, height, num_crops) -> (padded height, padded width), tokens.
SPEC_VECTORS = [
    (1280, 640, 4, (336, 672), 457),
    (640, 640, 4, (672, 672), 757),
    (1344, 1008, 16, (1008, 1344), 1921),
    (1280, 720, 16, (1008, 1680), 2353),
    (720, 1280, 16, (1680, 1008), 2377),
    (640, 640, 16, (1344, 1344), 2509),
    (336, 336, 4, (672, 672), 757),
    (336, 336, 16, (1344, 1344), 2509),
    (100, 3000, 16, (5376, 336), 2653),
]


@pytest.mark.parametrize(("width", "height", "num_crops", "padded", "tokens"), SPEC_VECTORS)
def test_token_count_formula_matches_spec_vectors(width, height, num_crops, padded, tokens):
    processor = Phi3VImageProcessor(num_crops=num_crops)
    assert hd_padded_size(width, height, num_crops) == padded
    assert processor.num_image_tokens(width, height) == tokens


@pytest.mark.parametrize(("width", "height", "num_crops", "padded", "tokens"), SPEC_VECTORS[:3] + SPEC_VECTORS[4:5])
def test_processing_pixels_agrees_with_the_closed_form(width, height, num_crops, padded, tokens):
    out = Phi3VImageProcessor(num_crops=num_crops)(Image.new("RGB", (width, height), (30, 60, 90)))
    assert out["image_sizes"].tolist() == [list(padded)]
    assert out["num_img_tokens"] == [tokens]
    assert out["pixel_values"].shape == (1, num_crops + 1, 3, 336, 336)
    assert out["pixel_values"].dtype == torch.float32


def test_white_image_normalised_mean():
    out = Phi3VImageProcessor(num_crops=4)(Image.new("RGB", (640, 640), (255, 255, 255)))
    # Spec §10.9 / transformers.js test: 2.0504 in all five slots (2x2 crops + global, no zero padding).
    for slot in out["pixel_values"][0]:
        assert slot.mean().item() == pytest.approx(2.0504, abs=1e-4)


def test_padding_crops_are_zero_and_crops_are_row_major():
    # A 2:1 image at num_crops=4 gives 1x2 crops: left half red, right half blue, then two zero crops.
    image = Image.new("RGB", (672, 336), (255, 0, 0))
    image.paste((0, 0, 255), (336, 0, 672, 336))
    processor = Phi3VImageProcessor(num_crops=4)
    pixels = processor(image)["pixel_values"][0]
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(processor.image_mean)) / torch.tensor(processor.image_std)
    blue = (torch.tensor([0.0, 0.0, 1.0]) - torch.tensor(processor.image_mean)) / torch.tensor(processor.image_std)
    torch.testing.assert_close(pixels[1].mean(dim=(1, 2)), red, atol=1e-5, rtol=0)
    torch.testing.assert_close(pixels[2].mean(dim=(1, 2)), blue, atol=1e-5, rtol=0)
    assert pixels[3:].abs().sum() == 0


def test_portrait_image_is_padded_left_and_right_with_white():
    image = Image.new("RGB", (300, 900), (0, 0, 0))
    out = Phi3VImageProcessor(num_crops=4)(image)
    height, width = out["image_sizes"][0].tolist()
    assert (height, width) == (1008, 336)
    # new width = int(1008 / 3) = 336 exactly, so no white; use a wider portrait to see the padding.
    out = Phi3VImageProcessor(num_crops=4)(Image.new("RGB", (200, 900), (0, 0, 0)))
    crop = out["pixel_values"][0, 1]
    white = (1 - torch.tensor(Phi3VImageProcessor().image_mean)) / torch.tensor(Phi3VImageProcessor().image_std)
    torch.testing.assert_close(crop[:, :, 0], white[:, None].expand(3, 336), atol=1e-5, rtol=0)
    assert crop[:, :, 168].max() < -1.4  # black (normalised) in the middle


def _png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make_image",
    [
        lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 0)),  # fully transparent: white after compositing
        lambda: Image.new("LA", (40, 30), (0, 0)),
        lambda: Image.new("RGB", (40, 30), (255, 255, 255)).convert("P"),
        lambda: Image.new("L", (40, 30), 255),
        lambda: Image.new("CMYK", (40, 30), (0, 0, 0, 0)),
        lambda: Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16)),  # 16-bit
        lambda: np.full((30, 40, 3), 255, dtype=np.uint8),
        lambda: np.ones((3, 30, 40), dtype=np.float32),
        lambda: torch.ones(3, 30, 40),
    ],
)
def test_every_input_kind_becomes_the_same_white_rgb(make_image):
    rgb = to_rgb_image(make_image())
    assert rgb.mode == "RGB" and rgb.size == (40, 30)
    assert np.asarray(rgb).min() == 255


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    loaded = Image.open(io.BytesIO(buffer.getvalue()))
    rgb = to_rgb_image(loaded)
    assert rgb.size == (20, 60)
    assert np.asarray(rgb)[:10].mean() > 200  # the white stripe is now on top


def test_batch_of_images_and_num_crops_override():
    processor = Phi3VImageProcessor(num_crops=16)
    out = processor([Image.new("RGB", (640, 640)), Image.new("RGB", (1280, 640))], num_crops=4)
    assert out["pixel_values"].shape == (2, 5, 3, 336, 336)
    assert out["num_img_tokens"] == [757, 457]


def test_save_and_load_round_trip(tmp_path):
    processor = Phi3VImageProcessor(num_crops=4, crop_size=56)
    processor.save_pretrained(tmp_path)
    loaded = Phi3VImageProcessor.from_pretrained(tmp_path)
    assert (loaded.num_crops, loaded.crop_size, loaded.merged_grid) == (4, 56, 2)


def test_official_preprocessor_config_loads(official_files):
    from transformers import AutoImageProcessor

    import phi3v  # noqa: F401  (registers the Auto classes)

    processor = AutoImageProcessor.from_pretrained(official_files)
    assert isinstance(processor, Phi3VImageProcessor)
    expected = 16 if "128k" in official_files.name else 4
    assert processor.num_crops == expected and processor.crop_size == 336


def test_zero_num_crops_is_a_clear_error():
    with pytest.raises(ValueError, match="num_crops"):
        Phi3VImageProcessor(num_crops=1)(Image.new("RGB", (10, 10)), num_crops=0)


# Official formula handled sizes (short side >= 1 px after the resize) next to the ones it crashed on.
EXTREME_SIZES = [(1344, 1, 4), (1345, 1, 4), (4000, 2, 4), (2, 4000, 4), (30000, 10, 4), (10, 30000, 16)]


@pytest.mark.parametrize(("width", "height", "num_crops"), EXTREME_SIZES)
def test_extreme_aspect_ratios_are_processed_with_the_token_count_from_size(width, height, num_crops):
    processor = Phi3VImageProcessor(num_crops=num_crops)
    out = processor(Image.new("RGB", (width, height), (10, 20, 30)))
    padded = tuple(out["image_sizes"][0].tolist())
    assert padded == hd_padded_size(width, height, num_crops)
    assert min(padded) == 336 and max(padded) == 336 * num_crops  # one strip of `num_crops` crops
    assert out["num_img_tokens"] == [processor.num_image_tokens(width, height)]
    assert torch.isfinite(out["pixel_values"]).all()


def test_the_one_pixel_floor_changes_nothing_the_official_formula_handles():
    # The reference: new_short = int(new_long / ratio), used as is. Compare on every ratio up to the 1,344:1 limit.
    for num_crops in (4, 16):
        for long_side, short_side in [(1344, 1), (2688, 2), (1000, 999), (5000, 7), (700, 3), (100, 3000)]:
            width, height = max(long_side, short_side), min(long_side, short_side)
            new_long = hd_scale(width, height, num_crops) * 336
            official_short = int(new_long / (width / height))
            if official_short >= 1:
                assert hd_resized_size(long_side, short_side, num_crops) == (new_long, official_short)


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _hard_photos() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    exif = Image.Exif()
    exif[0x0112] = 6
    rgba = Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), "RGBA")
    palette = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).convert("P")
    return {
        "16-bit": _png_bytes(Image.fromarray(rng.integers(0, 65536, (30, 40), dtype=np.uint16))),
        "cmyk": _jpeg(Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), "CMYK")),
        "rgba": _png_bytes(rgba),
        "palette-transparent": _png_bytes(palette, transparency=3),
        "exif-rotated": _jpeg(Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)), exif=exif.tobytes()),
    }


@pytest.mark.parametrize("kind", list(_hard_photos()))
def test_data_preparation_stores_the_pixels_the_processor_sees(kind):
    # Preparation converts with the processor's own `to_rgb_image` and stores a JPEG of it: the stored bytes are that
    # JPEG, pixel for pixel, of what prediction would compute from the original file.
    from phi3v.preparation.images import decode_image

    data = _hard_photos()[kind]
    expected = to_rgb_image(Image.open(io.BytesIO(data)))
    stored = decode_image(data)
    assert stored.data == _jpeg(expected)
    assert (stored.width, stored.height) == expected.size
