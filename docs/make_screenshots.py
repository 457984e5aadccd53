"""The README's two screenshots, made from the demo's trained model: the app answering a test photo
(`docs/images/app.png`) and the evaluation report's gallery (`docs/images/report_gallery.png`).

Run after `make demo` (which trains `outputs/demo` and writes `outputs/demo-eval/report.html`):

    make screenshots

It serves `scripts/app.py` on the demo model with the synthetic catalogue's test photos, uploads the first four test
photos (as JPEG files named by their row id) in headless Chromium (Debian's, as the browser tests use it:
`tests/browser_helpers.py`), waits for the answers and saves the page; then it saves the gallery of the report. The
photos are the split's first four, not chosen: the demo model gets two of them exactly right, one price wrong, and
one answer garbled (`outputs/demo-eval/predictions.jsonl` has the same four answers). The browser tests save the same views of the tiny random model in
`outputs/test-artifacts/`.
"""

import argparse
import os
import sys
from pathlib import Path

import datasets


REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the browser helpers of the tests

from tests.browser_helpers import chromium_page, serving_app  # noqa: E402


NUM_PHOTOS = 4
GALLERY_HEIGHT = 1030  # the gallery's first rows (worst answers first), as the README shows them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/demo", help="Relative to the repository root, or absolute.")
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--report", default="outputs/demo-eval/report.html")
    parser.add_argument("--output_dir", default="docs/images")
    args = parser.parse_args()
    for path in (args.model, args.dataset, args.report):
        if not (REPO_ROOT / path).exists():
            sys.exit(f"error: {path} does not exist; run `make demo` first.")

    output_dir = REPO_ROOT / args.output_dir
    work_dir = REPO_ROOT / "outputs" / "screenshots"
    work_dir.mkdir(parents=True, exist_ok=True)
    test_split = datasets.load_from_disk(str(REPO_ROOT / args.dataset))["test"]
    photos = []
    for row in test_split.select(range(NUM_PHOTOS)):
        photos.append(work_dir / f"{row['product_code']}.jpg")
        row["image"].convert("RGB").save(photos[-1], quality=90)
    app_args = ["--model", f"demo={args.model}", "--dataset", str(args.dataset), "--num_examples", "8"]
    try:
        with (
            serving_app(app_args, work_dir / "app.log", dict(os.environ)) as url,
            chromium_page(work_dir / "profile") as page,
        ):
            page.goto(url)
            page.set_input_files("#photos input[type=file]", [str(photo) for photo in photos])
            page.wait_for_function("() => document.querySelector('#status').innerText.includes('photo(s) answered')")
            page.wait_for_function(
                f"() => [...document.querySelectorAll('#gallery img')].filter(img => img.naturalWidth > 0).length"
                f" >= {NUM_PHOTOS}",
                timeout=10_000,
            )
            page.wait_for_timeout(500)  # the gallery fades the photo in
            page.screenshot(path=str(output_dir / "app.png"), full_page=True)

            page.goto((REPO_ROOT / args.report).resolve().as_uri())
            box = page.locator(".gallery").bounding_box()
            clip = {**box, "height": min(box["height"], GALLERY_HEIGHT)}
            page.screenshot(path=str(output_dir / "report_gallery.png"), clip=clip, full_page=True)
    except RuntimeError as error:  # the app did not start: its log says why
        sys.exit(f"error: {error}")
    print(f"Saved {output_dir / 'app.png'} and {output_dir / 'report_gallery.png'}")


if __name__ == "__main__":
    main()
