"""The HTML report in headless Chromium: the gallery's photos load, the worst answer comes first, baselines say n/a."""

from phi3v.evaluation.html_report import write_html_report

from ..browser_helpers import chromium_page, save_screenshot
from ..unit import test_html_report as unit_tests


evaluation = unit_tests.evaluation  # the unit tests' fixture: one evaluation's report files


def test_gallery_shows_its_photos_and_answers_in_chromium(evaluation, tmp_path):
    output_dir, metrics, lines, images, rows = evaluation
    path = write_html_report(output_dir, metrics, lines, images, gallery_size=4)
    with chromium_page(tmp_path / "profile") as page:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        loaded = page.evaluate(
            "() => [...document.querySelectorAll('.gallery img')].map(img => img.complete && img.naturalWidth > 0)"
        )
        assert loaded == [True] * 4
        cards = page.locator(".card")
        worst = rows[-1]
        first_card = cards.first.inner_text()
        assert worst["title"] in first_card and lines[-1]["predictions"]["sft"]["answer"] in first_card
        assert "n/a" in page.locator("table.metrics").inner_text()
        save_screenshot(page, "report.png")
        save_screenshot(page, "report_gallery.png", selector=".gallery")
