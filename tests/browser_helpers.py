"""Headless Chromium for the browser tests: the system's Chromium (Debian's, installed by `make browser`), driven by
playwright, or a skip that says what is missing.

Playwright's own browser download cannot work on machines without internet access, so the tests take the Chromium
on PATH. The flags keep it from reaching for the network (updates, sync, QUIC) and from needing a GPU or, as root,
a sandbox; every page gets a fresh profile.
"""

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "outputs" / "test-artifacts"  # screenshots for a reviewer (gitignored)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The system's Chromium, or a skip naming what is missing and how to get it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on PATH (Debian package `chromium`); `make browser` installs it where apt-get runs")
    return path


@contextlib.contextmanager
def chromium_page(profile_dir: Path, width: int = 1280, height: int = 900):
    """A playwright page in headless Chromium with a fresh profile in `profile_dir`; skips without Chromium or
    playwright."""
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (`.[tests]` extra)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def save_screenshot(page, name: str, selector: str | None = None) -> Path:
    """Save a screenshot of the page (or of one element) as `outputs/test-artifacts/<name>`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    if selector is None:
        page.screenshot(path=str(path), full_page=True)
    else:
        page.locator(selector).screenshot(path=str(path))
    return path


@contextlib.contextmanager
def serving_app(app_args: list[str], log_path: Path, env: dict[str, str], startup_seconds: int = 300):
    """`scripts/app.py APP_ARGS` run from the repository root on a free port of 127.0.0.1 (its output in `log_path`);
    yields the page's URL once it answers, and stops the app afterwards.

    Raises:
        `RuntimeError`: with the app's log, when it exits or does not answer within `startup_seconds`.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(REPO_ROOT / "scripts" / "app.py"), *app_args, "--port", str(port)]
    with open(log_path, "w") as log:  # from the repository root, so the page names models by their relative paths
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"scripts/app.py exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"scripts/app.py did not answer within {startup_seconds} s:\n{log_path.read_text()}"
                    ) from None
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
