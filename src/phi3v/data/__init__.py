"""Catalogue data: sources, image fetching, cleaning, splits, the on-disk format, chat formatting, synthetic data."""

from .fetch import FetchSettings
from .formatting import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION, build_messages, format_price, render_answer
from .prepare import prepare_catalogue
from .report import DropReason
from .sources import DEFAULT_HUB_DATASET, load_source
from .splits import SPLIT_NAMES, split_by_product_code
from .storage import CATALOGUE_FEATURES
from .synthetic import make_synthetic_catalogue


__all__ = [
    "CATALOGUE_FEATURES",
    "DEFAULT_ANSWER_TEMPLATE",
    "DEFAULT_HUB_DATASET",
    "DEFAULT_QUESTION",
    "SPLIT_NAMES",
    "DropReason",
    "FetchSettings",
    "build_messages",
    "format_price",
    "load_source",
    "make_synthetic_catalogue",
    "prepare_catalogue",
    "render_answer",
    "split_by_product_code",
]
