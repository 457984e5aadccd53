"""`scripts/app.py` in headless Chromium: start it on the tiny model, upload photos through the page, read the answers
from the page; a non-image upload gives a message on the page; picking a test photo shows its true answer."""

import os

import datasets
import pytest

from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import load_for_inference
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate, prompt_messages

from ..browser_helpers import REPO_ROOT, chromium_page, chromium_path, save_screenshot, serving_app
from ..evaluation_helpers import one_torch_thread


MAX_NEW_TOKENS = 12
STARTUP_SECONDS = 180


@pytest.fixture(scope="module")
def app_url(tiny_checkpoint, synthetic_catalogue, tmp_path_factory):
    """The app serving the tiny model, with test photos of the synthetic catalogue, on a free port of 127.0.0.1."""
    chromium_path()  # skip before starting anything when there is no browser
    app_args = [
        "--model", f"tiny={tiny_checkpoint}", "--dataset", str(synthetic_catalogue), "--num_examples", "4",
        "--max_new_tokens", str(MAX_NEW_TOKENS),
    ]  # fmt: skip
    # One torch thread: a tiny model gains nothing from more, and the machine is shared.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "src")}
    with serving_app(app_args, tmp_path_factory.mktemp("app") / "app.log", env, STARTUP_SECONDS) as url:
        yield url


def table_rows(page) -> list[list[str]]:
    """The cells of the answers table, row by row, as the page shows them (the grid's rows after its header)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#answers [role=row]')].slice(1)
                 .map(row => [...row.querySelectorAll('[role=gridcell], td')].map(cell => cell.innerText.trim()))"""
    )


def printable(text: str) -> str:
    """The text as a page shows it: a random model writes control characters, which the browser does not show."""
    return " ".join("".join(char for char in text if char.isprintable()).split())


def test_upload_a_photo_and_read_the_answers(app_url, tiny_checkpoint, synthetic_catalogue, tmp_path):
    test_split = datasets.load_from_disk(str(synthetic_catalogue))["test"]
    photo = tmp_path / "my-photo.jpg"
    test_split[5]["image"].convert("RGB").save(photo)
    with one_torch_thread():
        model, processor = load_for_inference(tiny_checkpoint)
        expected = generate_answers(
            model, processor, [build_prompt(processor, prompt_messages())], [[test_split[5]["image"].convert("RGB")]],
            max_new_tokens=MAX_NEW_TOKENS, show_progress=False,
        )[0]  # fmt: skip

    with chromium_page(tmp_path / "profile") as page:
        page.goto(app_url)
        page.set_input_files("#photos input[type=file]", str(photo))
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('photo(s) answered')")
        rows = table_rows(page)
        assert [row[:2] for row in rows] == [["my-photo.jpg", "tiny"]]
        assert printable(rows[0][-1]) == printable(expected)
        # The photo as the models read it, shown back (fails on timeout when it never loads).
        page.wait_for_function("() => document.querySelector('#gallery img')?.naturalWidth > 0", timeout=10_000)
        page.wait_for_timeout(500)  # the gallery fades the photo in
        save_screenshot(page, "app.png")

        # A file that is not a photo: a message naming it, no answers, and the page still works.
        page.goto(app_url)
        notes = tmp_path / "notes.txt"
        notes.write_text("not a photo")
        page.set_input_files("#photos input[type=file]", str(notes))
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('notes.txt')")
        assert "notes.txt is not an image" in page.inner_text("#status")
        assert table_rows(page) in ([], [[""] * 6])
        save_screenshot(page, "app_bad_upload.png")

        # A test photo of the dataset: its true answer shows, and the model answers it.
        page.locator("#examples img").nth(1).click()
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('photo(s) answered')")
        assert page.input_value("#truth textarea") == AnswerTemplate(DEFAULT_ANSWER_TEMPLATE).render(test_split[1])
        assert table_rows(page)[0][1] == "tiny"
