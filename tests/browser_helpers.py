"""Headless Chromium for the browser tests: the system's Chromium (Debian's, installed by `make browser`), driven by
playwright, or a skip that says what is missing.

Playwright's own browser download cannot work on machines without internet access, so the tests take the Chromium
on PATH. The flags keep it from reaching for the network (updates, sync, QUIC) and from needing a GPU or, as root,
a sandbox; every page gets a fresh profile.
"""

import contextlib
import shutil
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
