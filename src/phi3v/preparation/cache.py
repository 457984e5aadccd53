"""A content-addressed cache of downloaded image bytes, so an interrupted preparation resumes without downloading again.

Layout under the cache directory:

- `blobs/<sha[:2]>/<sha>`: the raw bytes of each image, named by their sha256 (two URLs serving the same image share
  one blob, and no two products can overwrite each other's file).
- `urls/<sha256 of the URL>`: a small text file holding the blob's sha256, one file per URL.

Every file is written to a temporary name and renamed into place, so a run killed mid-write leaves either a complete
entry or none. Only bytes that decoded as an image are cached: failures are retried on the next run.
"""

import hashlib
import os
import tempfile
from pathlib import Path


class ImageCache:
    """Content-addressed store of image bytes with a URL -> content hash index.

    Args:
        cache_dir (`str` or `Path`):
            Directory to keep the cache in; created if missing. It can be shared by runs on different sources.
    """

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        (self.cache_dir / "blobs").mkdir(parents=True, exist_ok=True)
        (self.cache_dir / "urls").mkdir(parents=True, exist_ok=True)

    def get(self, url: str) -> bytes | None:
        """Returns the cached bytes for `url`, or `None` when it was never stored or its blob no longer matches."""
        index_path = self._index_path(url)
        if not index_path.is_file():
            return None
        content_hash = index_path.read_text().strip()
        blob_path = self._blob_path(content_hash)
        if not blob_path.is_file():
            return None
        data = blob_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != content_hash:  # damaged on disk: treat as a miss and download again
            return None
        return data

    def put(self, url: str, data: bytes) -> str:
        """Stores `data` as the content of `url` and returns its sha256."""
        content_hash = hashlib.sha256(data).hexdigest()
        _write_atomically(self._blob_path(content_hash), data)  # also repairs a blob damaged on disk
        _write_atomically(self._index_path(url), content_hash.encode())
        return content_hash

    def _blob_path(self, content_hash: str) -> Path:
        return self.cache_dir / "blobs" / content_hash[:2] / content_hash

    def _index_path(self, url: str) -> Path:
        return self.cache_dir / "urls" / hashlib.sha256(url.encode()).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(file_descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise
