"""Tokens per sample of the rows a run will read, from image sizes alone (the collators' `sequence_length`), or an
assumed count when the dataset cannot be read."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from phi3v.data.image_columns import undecoded
from phi3v.modeling.image_features import count_image_tokens
from phi3v.modeling.image_processing_phi3_v import hd_padded_size


# The Phi-3 Cookbook's measured average on DocVQA at num_crops 16 (FineTuning_Vision.md).
COOKBOOK_TOKENS = 2443.23
COOKBOOK_NUM_CROPS = 16
# A question and answer around the image, for the assumed count at other resolutions.
ASSUMED_TEXT_TOKENS = 60


@dataclass(frozen=True)
class TokenStats:
    r"""
    Sequence lengths of the training rows, in tokens (image placeholders included).

    Args:
        lengths (`list[int]`): each row's length; one assumed length when the rows were not read.
        max_length (`int`, *optional*): the run's `max_length`; longer rows are dropped before training.
        source (`str`): the rows read, or why the length is assumed.
        assumed (`bool`): whether `lengths` is an assumption rather than the dataset's.
    """

    lengths: list[float] = field(repr=False)
    max_length: int | None
    source: str
    assumed: bool = False

    @property
    def kept(self) -> list[float]:
        """The lengths of the rows that train (those within `max_length`)."""
        return [n for n in self.lengths if self.max_length is None or n <= self.max_length]

    @property
    def over_max_length(self) -> int:
        return len(self.lengths) - len(self.kept)

    def quantile(self, q: float) -> float:
        """The `q` quantile of all rows' lengths (nearest rank)."""
        ordered = sorted(self.lengths)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    @property
    def longest_kept(self) -> float:
        """The longest row that trains: it sets the peak memory."""
        kept = self.kept
        return max(kept) if kept else self.max_length or max(self.lengths)


def dataset_lengths(rows: datasets.Dataset, collator) -> list[int]:
    """Each row's token count from image headers, as `add_length_column` computes it (no pixel is decoded).

    Args:
        rows (`datasets.Dataset`): the training split, in any layout the collator reads.
        collator ([`Phi3VSFTCollator`] or [`Phi3VPreferenceCollator`]): its `sequence_length` counts a row.
    """
    return [collator.sequence_length(row) for row in undecoded(rows)]


def square_image_tokens(num_crops: int) -> int:
    """Placeholder tokens of a square image at `num_crops` (2,509 at 16, 757 at 4)."""
    return count_image_tokens(*hd_padded_size(1000, 1000, num_crops))


def checkpoint_num_crops(model_name_or_path: str) -> int | None:
    """`num_crops` of a local checkpoint's `preprocessor_config.json`, or `None` when there is none to read."""
    path = Path(model_name_or_path) / "preprocessor_config.json"
    return json.loads(path.read_text()).get("num_crops") if path.is_file() else None


def assumed_tokens(num_crops: int) -> tuple[float, str]:
    """An assumed sequence length and where it comes from: the Cookbook's DocVQA average at 16 crops, else one square
    image plus a short question and answer."""
    if num_crops == COOKBOOK_NUM_CROPS:
        return COOKBOOK_TOKENS, "the Phi-3 Cookbook's DocVQA average at num_crops 16"
    tokens = square_image_tokens(num_crops) + ASSUMED_TEXT_TOKENS
    return tokens, f"a square image at num_crops {num_crops} plus {ASSUMED_TEXT_TOKENS} text tokens"
