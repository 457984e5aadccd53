"""Data: catalogue preparation (sources, image fetching, cleaning, splits, the on-disk format, synthetic data), and
loading any dataset with the layouts it may come in (`loading`, `formats`, `trl_format`)."""

from .fetch import FetchSettings
from .prepare import prepare_catalogue
from .report import DropReason
from .sources import DEFAULT_HUB_DATASET, load_source
from .splits import SPLIT_NAMES, split_by_product_code
from .storage import CATALOGUE_FEATURES
from .synthetic import make_synthetic_catalogue


__all__ = [
    "CATALOGUE_FEATURES",
    "DEFAULT_HUB_DATASET",
    "SPLIT_NAMES",
    "DropReason",
    "FetchSettings",
    "load_source",
    "make_synthetic_catalogue",
    "prepare_catalogue",
    "split_by_product_code",
]
