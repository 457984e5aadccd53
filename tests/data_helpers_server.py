"""A real HTTP server on 127.0.0.1 for the data tests: scripted responses per path, and a hit counter per path."""

import contextlib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "image/jpeg"
    fail_first: int = 0  # answer HTTP 500 to this many requests before the real answer
    delay: float = 0.0  # seconds to wait before answering
    location: str | None = None  # for redirects
    stall: bool = False  # do not answer until `CatalogueServer.release_stalled` is set
    send_length: bool = True  # without Content-Length the client only learns the size by reading the body


class CatalogueServer:
    """Serves `routes` (path -> `Route`) and counts requests per path in `hits`."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.hits: Counter = Counter()
        self.release_stalled = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.catalogue = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def add(self, path: str, body: bytes = b"", **route_fields) -> str:
        """Registers a route and returns its full URL."""
        self.routes[path] = Route(body=body, **route_fields)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address
        return f"http://{host}:{port}{path}"

    def count_hit(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release_stalled.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@contextlib.contextmanager
def running_server():
    server = CatalogueServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unused_port_url(path: str = "/image.jpg") -> str:
    """A URL on a local port nothing listens on, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up on slow routes (the timeout tests) are expected, not errors


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        catalogue = self.server.catalogue
        hit = catalogue.count_hit(self.path)
        route = catalogue.routes.get(self.path)
        if route is None:
            self._answer(404, b"not found", "text/plain")
            return
        if route.stall:
            catalogue.release_stalled.wait()
        time.sleep(route.delay)
        if hit <= route.fail_first:
            self._answer(500, b"try again", "text/plain")
        else:
            self._answer(route.status, route.body, route.content_type, route.location, route.send_length)

    def _answer(self, status, body, content_type, location=None, send_length=True) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if send_length:
                self.send_header("Content-Length", str(len(body)))
            if location is not None:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass
