"""The drop report: why a source row is not in the prepared dataset.

Every source row ends up either in one of the splits or in `dropped.jsonl` with exactly one reason from the fixed
vocabulary below, so `rows_in == rows_kept + rows_dropped` always holds and can be checked.
"""

from dataclasses import asdict, dataclass
from enum import StrEnum


class DropReason(StrEnum):
    """Why a row was dropped. Metadata reasons come first, then image reasons, then duplicates."""

    # Metadata (checked before any image is fetched).
    MISSING_PRODUCT_CODE = "missing_product_code"
    MISSING_TITLE = "missing_title"
    MISSING_PRICE = "missing_price"
    BAD_PRICE = "bad_price"  # present but not a positive number, e.g. "call us" or 0
    AMBIGUOUS_PRICE = "ambiguous_price"  # `1,290` where the table does not show its decimal mark (preparation.prices)
    MISSING_IMAGE = "missing_image"  # empty or "N.A." image URL/path
    # Where the image comes from.
    BAD_SCHEME = "bad_scheme"  # anything but http, https, file or a plain local path
    BAD_URL = "bad_url"  # an http(s) URL requests cannot parse
    FILE_NOT_FOUND = "file_not_found"
    LOCAL_PATH_FROM_HUB = "local_path_from_hub"  # a Hub dataset row names a local path or file:// URL: never read
    LOCAL_PATH_OUTSIDE_TABLE = "local_path_outside_table"  # absolute, file:// or ../ without --allow_local_paths
    HTTP_404 = "http_404"
    HTTP_ERROR = "http_error"  # any other HTTP status, still failing after the retries; too many redirects
    TIMEOUT = "timeout"  # connect or read timeout, still failing after the retries
    CONNECTION_ERROR = "connection_error"  # refused, reset, DNS..., still failing after the retries
    # What the bytes are.
    TOO_MANY_BYTES = "too_many_bytes"
    NOT_AN_IMAGE = "not_an_image"  # Pillow cannot identify the bytes (HTML error page, empty body...)
    TOO_MANY_PIXELS = "too_many_pixels"  # width x height over the cap, read from the header before decoding
    IMAGE_TOO_SMALL = "image_too_small"  # short side under one CLIP patch (14 px), e.g. a 1x1 tracking pixel
    EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"  # over 96:1, the model would see a strip under one patch high
    TRUNCATED_IMAGE = "truncated_image"
    CORRUPT_IMAGE = "corrupt_image"  # identified, but the pixels cannot be decoded or converted to RGB
    # Kept another row with the same product code.
    DUPLICATE_PRODUCT_CODE = "duplicate_product_code"


@dataclass
class DroppedRow:
    """One line of `dropped.jsonl`.

    Args:
        source_row (`int`):
            Index of the row in the source table (0-based, in file order).
        product_code (`str` or `None`):
            The row's product code, `None` when it has none.
        image_url (`str` or `None`):
            The image URL or path as written in the source.
        reason (`DropReason`):
            Why the row was dropped.
        detail (`str`, *optional*, defaults to `""`):
            Human-readable specifics, e.g. `"HTTP 503 after 3 attempts"` or the parser's error message.
    """

    source_row: int
    product_code: str | None
    image_url: str | None
    reason: DropReason
    detail: str = ""

    def to_json_dict(self) -> dict:
        return {**asdict(self), "reason": str(self.reason)}
