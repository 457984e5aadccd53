"""Fetching catalogue images: http(s) URLs with timeouts, retries, caps and a cache; local paths and `file://` URLs.

Every failure becomes an `ImageRejected` with a `DropReason`, so the caller can report it against the row.

Local files are read only for a local table, and only inside the table's folder unless `allow_local_paths`: a table
from the Hub (`base_dir=None`) that names a local path or a `file://` URL could otherwise pull a user's private files
into the prepared dataset, and from there into a pushed dataset or model.
"""

import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import urllib3
from tqdm.auto import tqdm

from .cache import ImageCache
from .images import DEFAULT_MAX_PIXELS, ImageRejected, StoredImage, decode_image
from .report import DropReason


USER_AGENT = "phi3v-recipes/0.1 (catalogue preparation; python-requests)"
_CHUNK_SIZE = 64 * 1024


@dataclass
class FetchSettings:
    """Limits for fetching one image.

    Args:
        connect_timeout (`float`, *optional*, defaults to `5.0`):
            Seconds to wait for a TCP connection.
        read_timeout (`float`, *optional*, defaults to `30.0`):
            Seconds to wait for the server between bytes (for the headers, then for each chunk of the body).
        max_retries (`int`, *optional*, defaults to `3`):
            Extra attempts after a timeout, a connection error, HTTP 429 or a 5xx. Other 4xx are not retried.
        retry_backoff (`float`, *optional*, defaults to `1.0`):
            Seconds before the first retry, doubled before each next one (1, 2, 4...).
        max_bytes (`int`, *optional*, defaults to `20 * 1024 * 1024`):
            Largest image file accepted, checked against `Content-Length` and while streaming the body.
        max_pixels (`int`, *optional*, defaults to `images.DEFAULT_MAX_PIXELS`):
            Largest `width * height` accepted, read from the image header before decoding.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 3
    retry_backoff: float = 1.0
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "max_bytes", "max_pixels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchSettings.{name} must be positive, got {getattr(self, name)}.")
        if self.max_retries < 0 or self.retry_backoff < 0:
            raise ValueError(
                f"max_retries and retry_backoff must be >= 0, got {self.max_retries}, {self.retry_backoff}."
            )


class ImageFetcher:
    """Fetches, verifies and converts catalogue images; thread-safe, one `requests.Session` per thread.

    Args:
        settings (`FetchSettings`, *optional*):
            Timeouts, retries and caps; `FetchSettings()` by default.
        cache (`ImageCache`, *optional*):
            Where downloaded images are kept between runs. Without one, every URL is downloaded.
        allow_local_paths (`bool`, *optional*, defaults to `False`):
            Let a local table name files anywhere (absolute paths, `file://` URLs, `../`). By default it may only name
            files inside its own folder. A Hub table never reads local files.

    `self.counts` tallies where the images came from: `"downloaded"`, `"from_cache"` and `"local_file"`.
    """

    def __init__(
        self, settings: FetchSettings | None = None, cache: ImageCache | None = None, allow_local_paths: bool = False
    ):
        self.settings = settings or FetchSettings()
        self.cache = cache
        self.allow_local_paths = allow_local_paths
        self.counts = Counter()
        self._counts_lock = threading.Lock()
        self._thread_local = threading.local()

    def fetch(self, image_ref: str, base_dir: Path | None) -> StoredImage:
        """Fetches one image given as an `http(s)` URL, a `file://` URL or a path (relative to `base_dir`).

        Args:
            image_ref (`str`): the URL or path, as written in the table.
            base_dir (`Path` or `None`): the local table's folder; `None` for a Hub table, which may name no local file.

        Raises:
            `ImageRejected`: with the reason the image cannot be used.
        """
        try:
            parts = urlsplit(image_ref)
        except ValueError as error:  # e.g. "http://[::1" (an unclosed IPv6 host)
            raise ImageRejected(DropReason.BAD_URL, str(error)) from error
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch_url(image_ref)
        if scheme in ("file", ""):
            return self._fetch_local(
                self._local_path(image_ref, url2pathname(parts.path) if scheme else None, base_dir)
            )
        raise ImageRejected(DropReason.BAD_SCHEME, f"scheme {scheme!r} is not http, https or file")

    def fetch_all(
        self, image_refs: Iterable[str], base_dir: Path | None, max_workers: int = 8, progress: bool = True
    ) -> dict[str, StoredImage | ImageRejected]:
        """Fetches images concurrently, each distinct reference once.

        Args:
            image_refs (`Iterable[str]`):
                URLs or paths; duplicates are fetched once.
            base_dir (`Path` or `None`):
                Directory that relative paths are resolved against; `None` for a Hub table (no local files).
            max_workers (`int`, *optional*, defaults to `8`):
                Images fetched at the same time.
            progress (`bool`, *optional*, defaults to `True`):
                Whether to show a progress bar.

        Returns:
            `dict[str, StoredImage | ImageRejected]`: the image, or why it was rejected, for each reference.
        """
        unique_refs = list(dict.fromkeys(image_refs))
        results = {}
        executor = ThreadPoolExecutor(max_workers=max_workers)
        try:
            futures = {executor.submit(self.fetch, ref, base_dir): ref for ref in unique_refs}
            for future in tqdm(
                as_completed(futures), total=len(futures), desc="Images", unit="img", disable=not progress
            ):
                try:
                    results[futures[future]] = future.result()
                except ImageRejected as rejection:
                    results[futures[future]] = rejection
        finally:
            # On Ctrl-C or an error, drop the queued fetches rather than finish them all; fetched ones are cached.
            executor.shutdown(wait=True, cancel_futures=True)
        return results

    def _local_path(self, image_ref: str, file_url_path: str | None, base_dir: Path | None) -> Path:
        if base_dir is None:
            raise ImageRejected(
                DropReason.LOCAL_PATH_FROM_HUB, f"a Hub dataset row names the local file {image_ref!r}; not read"
            )
        path = Path(file_url_path) if file_url_path is not None else base_dir / image_ref
        if self.allow_local_paths:
            return path
        folder = base_dir.resolve()
        if file_url_path is not None or Path(image_ref).is_absolute() or folder not in path.resolve().parents:
            raise ImageRejected(
                DropReason.LOCAL_PATH_OUTSIDE_TABLE,
                f"{image_ref!r} is outside the table's folder {folder}; pass --allow_local_paths to read it",
            )
        return path

    def _fetch_local(self, path: Path) -> StoredImage:
        if not path.is_file():
            raise ImageRejected(DropReason.FILE_NOT_FOUND, f"{path} is not a file")
        size = path.stat().st_size
        if size > self.settings.max_bytes:
            raise ImageRejected(
                DropReason.TOO_MANY_BYTES, f"{path} has {size:,} bytes, over {self.settings.max_bytes:,}"
            )
        image = decode_image(path.read_bytes(), self.settings.max_pixels)
        self._count("local_file")
        return image

    def _fetch_url(self, url: str) -> StoredImage:
        if self.cache is not None and (data := self.cache.get(url)) is not None:
            image = decode_image(data, self.settings.max_pixels)
            self._count("from_cache")
            return image
        data = self._download(url)
        image = decode_image(data, self.settings.max_pixels)  # raises before anything unusable is cached
        if self.cache is not None:
            self.cache.put(url, data)
        self._count("downloaded")
        return image

    def _download(self, url: str) -> bytes:
        settings = self.settings
        attempts = settings.max_retries + 1
        for attempt in range(attempts):
            if attempt > 0:
                time.sleep(settings.retry_backoff * 2 ** (attempt - 1))
            try:
                timeout = (settings.connect_timeout, settings.read_timeout)
                with self._session().get(url, timeout=timeout, stream=True) as response:
                    if response.status_code == 200:
                        return self._read_body(response)
                    failure = (DropReason.HTTP_ERROR, f"HTTP {response.status_code}")
                    if response.status_code == 404:
                        raise ImageRejected(DropReason.HTTP_404, "HTTP 404")
                    if response.status_code != 429 and response.status_code < 500:
                        raise ImageRejected(*failure)
            except requests.Timeout as error:
                failure = (DropReason.TIMEOUT, f"{type(error).__name__}")
            except requests.TooManyRedirects as error:
                raise ImageRejected(DropReason.HTTP_ERROR, str(error)) from error
            except requests.exceptions.InvalidSchema as error:  # e.g. a redirect to ftp://
                raise ImageRejected(DropReason.BAD_SCHEME, str(error)) from error
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as error:
                raise ImageRejected(DropReason.BAD_URL, str(error)) from error
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                # requests reports a read timeout in the middle of the body as a ConnectionError.
                timed_out = bool(error.args) and isinstance(error.args[0], urllib3.exceptions.ReadTimeoutError)
                failure = (DropReason.TIMEOUT if timed_out else DropReason.CONNECTION_ERROR, type(error).__name__)
            except requests.RequestException as error:  # anything else requests refuses, e.g. a bad header
                raise ImageRejected(DropReason.HTTP_ERROR, f"{type(error).__name__}: {error}") from error
        reason, detail = failure
        raise ImageRejected(reason, f"{detail} after {attempts} attempt(s)")

    def _read_body(self, response: requests.Response) -> bytes:
        max_bytes = self.settings.max_bytes
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ImageRejected(DropReason.TOO_MANY_BYTES, f"Content-Length {int(declared):,} is over {max_bytes:,}")
        body = bytearray()
        for chunk in response.iter_content(_CHUNK_SIZE):
            body += chunk
            if len(body) > max_bytes:
                raise ImageRejected(DropReason.TOO_MANY_BYTES, f"body is over {max_bytes:,} bytes")
        return bytes(body)

    def _session(self) -> requests.Session:
        session = getattr(self._thread_local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._thread_local.session = session
        return session

    def _count(self, source: str) -> None:
        with self._counts_lock:
            self.counts[source] += 1
