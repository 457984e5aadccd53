"""Catalogue preparation: a product table (a Hub dataset or a local file) read (`sources`), its rows cleaned
(`cleaning`), their images fetched, cached and checked (`fetch`, `cache`, `images`), split by product code (`splits`)
and saved with a manifest and the reason every dropped row was dropped (`storage`, `report`), by `prepare`."""

from .fetch import FetchSettings
from .prepare import prepare_catalogue
from .report import DropReason
from .sources import DEFAULT_HUB_DATASET, load_source
from .splits import SPLIT_NAMES, split_by_product_code
from .storage import CATALOGUE_FEATURES


__all__ = [
    "CATALOGUE_FEATURES",
    "DEFAULT_HUB_DATASET",
    "SPLIT_NAMES",
    "DropReason",
    "FetchSettings",
    "load_source",
    "prepare_catalogue",
    "split_by_product_code",
]
