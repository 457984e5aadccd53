"""Sequence lengths without decoding images, for length-grouped batches (`train_sampling_strategy: group_by_length`).

An image's token count follows from its size alone (`Phi3VImageProcessor.num_image_tokens`), which PIL reads from the
file header, so the length of every row is known before training without decoding a pixel. transformers' `Trainer` reads it
from the `length` column: with `group_by_length`, each batch gathers rows of similar length and little compute goes
to padding (`benchmarks/padding.py` measures how little).
"""

import logging
from collections.abc import Sequence

import datasets

from phi3v.data.image_columns import undecoded


logger = logging.getLogger(__name__)


def add_length_column(
    dataset: datasets.Dataset,
    collator,
    max_length: int | None = None,
    column: str = "length",
    lengths: Sequence[int] | None = None,
) -> datasets.Dataset:
    """Adds each row's token count as `column` and drops the rows longer than `max_length`, logging how many.

    Works for SFT rows and preference pairs alike: the collator's `sequence_length` gives a row's (or a pair's
    longer side's) token count.

    Long rows are dropped, not truncated: truncation would cut the image placeholders (which must match the image's
    features) or the answer (the only tokens with a loss).

    Args:
        dataset (`datasets.Dataset`): the rows, in any layout the collator reads.
        collator ([`Phi3VSFTCollator`] or [`Phi3VPreferenceCollator`]): gives each row's token count.
        max_length (`int`, *optional*): longest row kept, in tokens.
        column (`str`, *optional*, defaults to `"length"`): the column to write (`length_column_name`).
        lengths (`Sequence[int]`, *optional*): each row's token count when already counted (the pre-flight plan
            counts them before the model loads), so a large dataset is read once.
    """
    if lengths is None:
        lengths = [collator.sequence_length(row) for row in undecoded(dataset)]
    elif len(lengths) != len(dataset):
        raise ValueError(f"{len(lengths)} lengths for {len(dataset)} rows.")
    lengths = list(lengths)
    dataset = dataset.add_column(column, lengths)
    if max_length is None:
        return dataset
    keep = [i for i, length in enumerate(lengths) if length <= max_length]
    if len(keep) < len(lengths):
        logger.warning(
            f"Dropped {len(lengths) - len(keep)} of {len(lengths)} rows longer than max_length={max_length} tokens "
            f"(the longest has {max(lengths)}); raise max_length or lower num_crops to keep them."
        )
        dataset = dataset.select(keep)
    if len(dataset) == 0:
        raise ValueError(f"No row fits in max_length={max_length} tokens (the shortest has {min(lengths)}).")
    return dataset


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the computed tokens that are padding when each batch is padded to its longest row.

    Args:
        lengths (`Sequence[int]`): token count of each row.
        batches (`Sequence[Sequence[int]]`): row indices of each batch.
    """
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    real = sum(lengths[i] for batch in batches for i in batch)
    return 1 - real / padded
