"""Shape arithmetic of Phi-3-V image features: crop grids, the 2x2 merge and the token count of an image."""

import torch


def crop_grid(padded_height: int, padded_width: int, crop_size: int) -> tuple[int, int]:
    """Rows and columns of HD crops of an image whose padded size is (`padded_height`, `padded_width`)."""
    return padded_height // crop_size, padded_width // crop_size


def count_image_tokens(padded_height: int, padded_width: int, crop_size: int = 336, merged_grid: int = 12) -> int:
    """Number of placeholder tokens of one image: the sub-image grid with a separator closing every row, `glb_GN`,
    then the global view with a separator closing every row.

    For the official 336 px crops (`merged_grid` 12) this is `(rows * cols + 1) * 144 + 1 + (rows + 1) * 12`.

    Args:
        padded_height (`int`): height of the padded HD image (a multiple of `crop_size`).
        padded_width (`int`): width of the padded HD image (a multiple of `crop_size`).
        crop_size (`int`, *optional*, defaults to 336): side of one crop in pixels.
        merged_grid (`int`, *optional*, defaults to 12): side of a crop's feature grid after the 2x2 merge.
    """
    rows, cols = crop_grid(padded_height, padded_width, crop_size)
    return (rows * cols + 1) * merged_grid**2 + 1 + (rows + 1) * merged_grid


def merge_2x2(patch_features: torch.Tensor) -> torch.Tensor:
    """Space-to-channel merge of each crop's square patch grid.

    Output cell (r, c) concatenates the features at (2r, 2c), (2r, 2c+1), (2r+1, 2c), (2r+1, 2c+1), in that order.

    Args:
        patch_features (`torch.Tensor` of shape `(num_crops, grid * grid, dim)`): row-major patch features.

    Returns:
        `torch.Tensor` of shape `(num_crops, grid // 2, grid // 2, 4 * dim)`.
    """
    num_crops, num_patches, dim = patch_features.shape
    grid = int(num_patches**0.5)
    if grid * grid != num_patches or grid % 2:
        raise ValueError(f"Expected an even square patch grid, got {num_patches} patches per crop")
    half = grid // 2
    merged = patch_features.reshape(num_crops, half, 2, half, 2, dim).permute(0, 1, 3, 2, 4, 5)
    return merged.reshape(num_crops, half, half, 4 * dim)
