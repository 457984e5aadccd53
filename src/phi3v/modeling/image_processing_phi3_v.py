"""Phi-3-V image processor: the HD transform of the official checkpoints, exact to the pixel, batched over images."""

import math

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .image_features import count_image_tokens


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def hd_scale(width: int, height: int, num_crops: int) -> int:
    """Largest `s` with `s * ceil(s / ratio) <= num_crops`, where `ratio = max(w, h) / min(w, h)`."""
    if num_crops < 1:
        raise ValueError(f"`num_crops` must be at least 1, got {num_crops}")
    if width < height:
        width, height = height, width
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= num_crops:
        scale += 1
    return scale - 1


def hd_resized_size(width: int, height: int, num_crops: int, crop_size: int = 336) -> tuple[int, int]:
    """Size (long side, short side) the HD transform resizes a `width` x `height` image to, before padding.

    The long side becomes `scale * crop_size`; the short side keeps the aspect ratio (truncated, as the reference
    does). Above an aspect ratio of `scale * crop_size` (1,344:1 at 4 crops) the reference formula gives a short side
    of 0 pixels and crashes; it is kept at 1 pixel instead, which changes nothing for any image the reference handles.
    """
    long_side, short_side = max(width, height), min(width, height)
    new_long = hd_scale(long_side, short_side, num_crops) * crop_size
    return new_long, max(1, int(new_long / (long_side / short_side)))


def hd_padded_size(width: int, height: int, num_crops: int, crop_size: int = 336) -> tuple[int, int]:
    """Padded HD size (height, width) of a `width` x `height` image, computed without touching pixels.

    The short side of [`hd_resized_size`] is padded up to a multiple of `crop_size`. Portrait images are handled
    transposed, as the reference does.
    """
    new_long, new_short = hd_resized_size(width, height, num_crops, crop_size)
    padded_short = math.ceil(new_short / crop_size) * crop_size
    return (new_long, padded_short) if width < height else (padded_short, new_long)


def to_rgb_image(image) -> Image.Image:
    """Any PIL image, HWC/CHW numpy array or tensor as an 8-bit RGB PIL image with its EXIF orientation applied.

    The one RGB conversion of the project: data preparation stores what this returns and the image processor reads
    what this returns, so a photo becomes the same pixels at training and at prediction. Transparency is composited
    on white (transformers' `convert_to_rgb`); 16-bit greys are scaled to 8 bits (PIL would clip them to white);
    CMYK, palette and greyscale are converted by PIL. Float arrays are read as values in [0, 1].
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            image = image.transpose(1, 2, 0)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.dtype.kind == "f":
            image = (np.clip(image, 0.0, 1.0) * 255).round()
        image = Image.fromarray(image.astype(np.uint8))
    if not isinstance(image, Image.Image):
        raise TypeError(f"Images must be PIL images, numpy arrays or torch tensors, got {type(image).__name__}")
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray((array / peak * 255).round().astype(np.uint8))
    return Image.fromarray(convert_to_rgb(image, return_numpy=True))


class Phi3VImageProcessor(BaseImageProcessor):
    r"""Image processor of Phi-3-Vision and Phi-3.5-Vision.

    Each image becomes `num_crops + 1` normalised crops of `crop_size` pixels: a bicubic global view, then the HD crops
    in row-major order, then zero padding. The HD transform transposes portrait images, picks the largest grid that
    fits `num_crops`, resizes with PIL bilinear, pads with white (centred) to whole crops and transposes back.

    Args:
        num_crops (`int`, *optional*, defaults to 1): maximum number of HD crops per image (the official
            `preprocessor_config.json` says 16 for Phi-3-vision-128k-instruct and 4 for Phi-3.5-vision-instruct).
        crop_size (`int`, *optional*, defaults to 336): side of one crop; equals the vision tower's `image_size`.
        patch_size (`int`, *optional*, defaults to 14): the vision tower's patch size.
        image_mean (`list[float]`, *optional*, defaults to OpenAI CLIP's mean).
        image_std (`list[float]`, *optional*, defaults to OpenAI CLIP's std).
        num_img_tokens (`int`, *optional*, defaults to 144): kept for the official file format; the real count per
            image comes from [`~Phi3VImageProcessor.num_image_tokens`].
    """

    model_input_names = ["pixel_values", "image_sizes"]

    def __init__(
        self,
        num_crops: int = 1,
        crop_size: int = 336,
        patch_size: int = 14,
        image_mean: list[float] = OPENAI_CLIP_MEAN,
        image_std: list[float] = OPENAI_CLIP_STD,
        num_img_tokens: int = 144,
        do_convert_rgb: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_crops = num_crops
        self.crop_size = crop_size
        self.patch_size = patch_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.num_img_tokens = num_img_tokens
        self.do_convert_rgb = do_convert_rgb

    @property
    def merged_grid(self) -> int:
        """Side of one crop's token grid after the 2x2 merge (12 for 336 px crops of 14 px patches)."""
        return self.crop_size // self.patch_size // 2

    def num_image_tokens(self, width: int, height: int, num_crops: int | None = None) -> int:
        """Placeholder tokens of a `width` x `height` image, without decoding or resizing it."""
        padded_height, padded_width = hd_padded_size(
            width, height, self.num_crops if num_crops is None else num_crops, self.crop_size
        )
        return count_image_tokens(padded_height, padded_width, self.crop_size, self.merged_grid)

    def hd_transform(self, image: Image.Image, num_crops: int) -> Image.Image:
        """Resize (PIL bilinear) and white-pad an RGB image to whole crops, transposing portrait images around it."""
        transposed = image.width < image.height
        if transposed:
            image = image.transpose(Image.Transpose.TRANSPOSE)
        new_width, new_height = hd_resized_size(image.width, image.height, num_crops, self.crop_size)
        image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
        padded_height = math.ceil(new_height / self.crop_size) * self.crop_size
        top = (padded_height - new_height) // 2
        padded = Image.new("RGB", (new_width, padded_height), (255, 255, 255))
        padded.paste(image, (0, top))
        return padded.transpose(Image.Transpose.TRANSPOSE) if transposed else padded

    def crops(self, image: Image.Image, num_crops: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """The `num_crops + 1` crops of one RGB image and its padded HD size (height, width)."""
        hd_image = self.hd_transform(image, num_crops)
        pixels = torch.from_numpy(np.asarray(hd_image).copy()).permute(2, 0, 1).float().div(255)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        pixels = (pixels - mean) / std
        size = self.crop_size
        # The global view is resized from the already-normalised HD image with torch's bicubic, as the reference does.
        global_view = torch.nn.functional.interpolate(pixels[None], size=(size, size), mode="bicubic")
        _, height, width = pixels.shape
        rows, cols = height // size, width // size
        tiles = pixels.reshape(3, rows, size, cols, size).permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, size, size)
        padding = torch.zeros(num_crops - rows * cols, 3, size, size)
        return torch.cat([global_view, tiles, padding]), (height, width)

    def preprocess(self, images, num_crops: int | None = None, return_tensors: str | None = "pt", **kwargs):
        """Processes one image or a list of images (PIL, numpy or torch; any mode).

        Args:
            images: an image or a list of images.
            num_crops (`int`, *optional*): overrides `self.num_crops` for this call.
            return_tensors (`str`, *optional*, defaults to `"pt"`): only PyTorch tensors are produced.

        Returns:
            [`BatchFeature`] with `pixel_values` (`(num_images, num_crops + 1, 3, crop_size, crop_size)`, float32),
            `image_sizes` (`(num_images, 2)`, int64, padded height and width) and `num_img_tokens` (list of int).
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(
                f"Phi3VImageProcessor returns PyTorch tensors only, got return_tensors={return_tensors!r}"
            )
        num_crops = self.num_crops if num_crops is None else num_crops
        if not isinstance(images, list | tuple):
            images = [images]
        pixel_values, image_sizes = [], []
        for image in images:
            crops, size = self.crops(to_rgb_image(image), num_crops)
            pixel_values.append(crops)
            image_sizes.append(size)
        num_img_tokens = [count_image_tokens(h, w, self.crop_size, self.merged_grid) for h, w in image_sizes]
        return BatchFeature(
            {
                "pixel_values": torch.stack(pixel_values)
                if pixel_values
                else torch.zeros(0, num_crops + 1, 3, self.crop_size, self.crop_size),
                "image_sizes": torch.tensor(image_sizes, dtype=torch.long).reshape(-1, 2),
                "num_img_tokens": num_img_tokens,
            }
        )

    def __call__(self, images, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)
