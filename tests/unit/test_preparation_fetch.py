import io

import pytest
from PIL import Image

from phi3v.preparation.cache import ImageCache
from phi3v.preparation.fetch import FetchSettings, ImageFetcher
from phi3v.preparation.images import ImageRejected
from phi3v.preparation.report import DropReason

from .. import data_helpers_images as images
from ..data_helpers_server import running_server, unused_port_url


# Small timeouts and backoff keep the failure cases fast; two attempts per URL.
FAST_SETTINGS = FetchSettings(
    connect_timeout=2.0, read_timeout=0.4, max_retries=1, retry_backoff=0.01, max_bytes=1_000_000
)


@pytest.fixture
def server():
    with running_server() as server:
        yield server


def fetch(url: str, tmp_path, settings: FetchSettings = FAST_SETTINGS):
    return ImageFetcher(settings, ImageCache(tmp_path / "cache")).fetch(url, tmp_path)


def rejection_reason(url: str, tmp_path, settings: FetchSettings = FAST_SETTINGS) -> DropReason:
    with pytest.raises(ImageRejected) as rejection:
        fetch(url, tmp_path, settings)
    return rejection.value.reason


@pytest.mark.parametrize(
    ("path", "make_bytes", "content_type"),
    [
        ("/a.jpg", images.jpeg, "image/jpeg"),
        ("/a.png", images.png, "image/png"),
        ("/a.webp", images.webp, "image/webp"),
    ],
)
def test_good_images_are_fetched(server, tmp_path, path, make_bytes, content_type):
    url = server.add(path, make_bytes(), content_type=content_type)
    stored = fetch(url, tmp_path)
    assert Image.open(io.BytesIO(stored.data)).mode == "RGB"
    assert server.hits[path] == 1


def test_404_is_not_retried(server, tmp_path):
    url = server.add("/gone.jpg", b"no", status=404, content_type="text/plain")
    assert rejection_reason(url, tmp_path) == DropReason.HTTP_404
    assert server.hits["/gone.jpg"] == 1


def test_500_then_success_is_retried(server, tmp_path):
    url = server.add("/flaky.jpg", images.jpeg(), fail_first=1)
    assert fetch(url, tmp_path).width == 48
    assert server.hits["/flaky.jpg"] == 2


def test_persistent_500_gives_up_after_the_retries(server, tmp_path):
    url = server.add("/broken.jpg", images.jpeg(), fail_first=99)
    assert rejection_reason(url, tmp_path) == DropReason.HTTP_ERROR
    assert server.hits["/broken.jpg"] == 1 + FAST_SETTINGS.max_retries


def test_response_slower_than_the_read_timeout_times_out(server, tmp_path):
    url = server.add("/slow.jpg", images.jpeg(), delay=1.5)
    assert rejection_reason(url, tmp_path) == DropReason.TIMEOUT
    assert server.hits["/slow.jpg"] == 1 + FAST_SETTINGS.max_retries


def test_refused_connection_is_a_connection_error(tmp_path):
    assert rejection_reason(unused_port_url(), tmp_path) == DropReason.CONNECTION_ERROR


def test_redirect_is_followed(server, tmp_path):
    server.add("/target.jpg", images.jpeg())
    url = server.add("/moved.jpg", status=302, location="/target.jpg")
    assert fetch(url, tmp_path).width == 48
    assert server.hits["/moved.jpg"] == server.hits["/target.jpg"] == 1


OVERSIZED_BODY = b"\xff\xd8\xff" + bytes(1_500_000)  # the cap is checked before the bytes are looked at


def test_redirect_to_another_scheme_is_refused(server, tmp_path):
    url = server.add("/elsewhere.jpg", status=302, location="ftp://example.com/a.jpg")
    assert rejection_reason(url, tmp_path) == DropReason.BAD_SCHEME


@pytest.mark.parametrize(
    ("body", "content_type", "send_length", "reason"),
    [
        # An error page served as 200 with an image content type.
        (images.HTML_PAGE, "image/jpeg", True, DropReason.NOT_AN_IMAGE),
        (images.truncated("JPEG"), "image/jpeg", True, DropReason.TRUNCATED_IMAGE),
        (images.png_bomb(), "image/png", True, DropReason.TOO_MANY_PIXELS),
        (OVERSIZED_BODY, "image/jpeg", True, DropReason.TOO_MANY_BYTES),  # refused from Content-Length
        (OVERSIZED_BODY, "image/jpeg", False, DropReason.TOO_MANY_BYTES),  # refused while streaming
    ],
    ids=["html", "truncated-jpeg", "30000x30000-png", "over-byte-cap", "over-byte-cap-no-length"],
)
def test_bad_bodies_are_rejected_and_not_cached(server, tmp_path, body, content_type, send_length, reason):
    assert len(images.png_bomb()) < FAST_SETTINGS.max_bytes < len(OVERSIZED_BODY)
    url = server.add("/bad", body, content_type=content_type, send_length=send_length)
    assert rejection_reason(url, tmp_path) == reason
    assert rejection_reason(url, tmp_path) == reason
    assert server.hits["/bad"] == 2  # a failure is tried again on the next run, not remembered


def test_cache_serves_a_second_fetch_without_a_request(server, tmp_path):
    url = server.add("/cached.jpg", images.jpeg())
    cache = ImageCache(tmp_path / "cache")
    first = ImageFetcher(FAST_SETTINGS, cache).fetch(url, tmp_path)
    fetcher = ImageFetcher(FAST_SETTINGS, ImageCache(tmp_path / "cache"))
    assert fetcher.fetch(url, tmp_path).data == first.data
    assert server.hits["/cached.jpg"] == 1
    assert fetcher.counts == {"from_cache": 1}


def test_cache_is_content_addressed_and_detects_damage(server, tmp_path):
    data = images.jpeg()
    first_url, second_url = server.add("/one.jpg", data), server.add("/two.jpg", data)
    cache = ImageCache(tmp_path / "cache")
    fetcher = ImageFetcher(FAST_SETTINGS, cache)
    fetcher.fetch(first_url, tmp_path)
    fetcher.fetch(second_url, tmp_path)
    blobs = list((tmp_path / "cache" / "blobs").rglob("*"))
    blobs = [blob for blob in blobs if blob.is_file()]
    assert len(blobs) == 1  # two URLs, one image: one blob
    blobs[0].write_bytes(b"damaged")
    assert cache.get(first_url) is None
    fetcher.fetch(first_url, tmp_path)
    assert server.hits["/one.jpg"] == 2
    assert cache.get(first_url) == data


@pytest.mark.parametrize(
    ("image_ref", "reason"),
    [
        ("ftp://example.com/a.jpg", DropReason.BAD_SCHEME),
        ("data:image/png;base64,AAAA", DropReason.BAD_SCHEME),
        ("http://[::1/a.jpg", DropReason.BAD_URL),
        ("http:///a.jpg", DropReason.BAD_URL),
    ],
)
def test_only_http_https_and_local_schemes_and_valid_urls(tmp_path, image_ref, reason):
    assert rejection_reason(image_ref, tmp_path) == reason


def test_local_paths_and_file_urls(tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "bag.png").write_bytes(images.png())
    fetcher = ImageFetcher(FAST_SETTINGS, allow_local_paths=True)
    assert fetcher.fetch("pictures/bag.png", tmp_path).width == 40
    assert fetcher.fetch((tmp_path / "pictures" / "bag.png").as_uri(), tmp_path / "elsewhere").width == 40
    assert fetcher.counts == {"local_file": 2}
    with pytest.raises(ImageRejected) as rejection:
        fetcher.fetch("pictures/absent.png", tmp_path)
    assert rejection.value.reason == DropReason.FILE_NOT_FOUND


def test_fetch_all_fetches_each_url_once_concurrently(server, tmp_path):
    urls = [server.add(f"/{index}.jpg", images.jpeg(size=(20 + index, 20))) for index in range(12)]
    urls.append(server.add("/missing.jpg", status=404))
    results = ImageFetcher(FAST_SETTINGS).fetch_all(urls + urls[:5], tmp_path, max_workers=4, progress=False)
    assert set(results) == set(urls)
    assert [results[url].width for url in urls[:12]] == [20 + index for index in range(12)]
    assert results[urls[-1]].reason == DropReason.HTTP_404
    assert all(count == 1 for count in server.hits.values())
