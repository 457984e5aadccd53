"""The app's logic without a browser: opening uploads, answering with several models, the answer table, examples."""

import struct
import zlib

import datasets
import pytest
from peft import PeftModel
from PIL import Image

from phi3v.app.answers import (
    answer_photos,
    answer_rows,
    check_question,
    load_examples,
    load_models,
    table_headers,
)
from phi3v.app.photos import MAX_PIXELS, PhotoError, open_photo
from phi3v.inference.generation import generate_answers
from phi3v.inference.loading import parse_model_specs
from phi3v.modeling.chat_format import build_prompt
from phi3v.tasks import build_task
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION, AnswerTemplate, prompt_messages
from phi3v.tasks.config import TaskConfig

from ..evaluation_helpers import make_lora_adapter, one_torch_thread


CATALOGUE_TASK = build_task(TaskConfig(task="catalogue"))
FREE_TASK = build_task(TaskConfig(task="conversation"))


def png_header(width: int, height: int) -> bytes:
    """A PNG of that size without pixel data (signature, IHDR, IEND): all Pillow needs to read its size, so a huge
    upload costs a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_open_photo_decodes_any_mode_to_rgb(tmp_path):
    path = tmp_path / "logo.png"
    Image.new("RGBA", (30, 20), (255, 0, 0, 128)).save(path)
    photo = open_photo(path)
    assert photo.mode == "RGB" and photo.size == (30, 20)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.pdf", b"%PDF-1.7 not a photo", "notes.pdf is not an image"),
        ("empty.jpg", b"", "empty.jpg is not an image"),
        ("scan.png", png_header(10_000, 6_000), r"scan.png is too large: 10000 x 6000 pixels \(60 megapixels\)"),
        ("bomb.png", png_header(30_000, 30_000), "bomb.png is too large"),  # Pillow's own limit goes first
    ],
)
def test_open_photo_names_the_file_and_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PhotoError, match=message):
        open_photo(path)


def test_open_photo_refuses_a_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path, quality=90)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(PhotoError, match="cut.jpg is a damaged image"):
        open_photo(path)


def test_open_photo_limit_is_a_parameter(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(PhotoError, match="the limit is 0 megapixels"):
        open_photo(path, max_pixels=399)
    assert open_photo(path, max_pixels=400).size == (20, 20)


def test_an_upload_becomes_the_pixels_training_sees(tmp_path):
    """A transparent PNG lands on white, as data preparation and the image processor convert it (not on black)."""
    from phi3v.modeling.image_processing_phi3_v import to_rgb_image
    from phi3v.preparation.images import DEFAULT_MAX_PIXELS

    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((200, 30, 40, 255), (8, 8, 24, 24))
    image.save(tmp_path / "cutout.png")
    photo = open_photo(tmp_path / "cutout.png")
    assert photo.getpixel((0, 0)) == (255, 255, 255) and photo.getpixel((16, 16)) == (200, 30, 40)
    assert list(photo.getdata()) == list(to_rgb_image(Image.open(tmp_path / "cutout.png")).getdata())
    assert MAX_PIXELS == DEFAULT_MAX_PIXELS  # the app accepts what preparation accepts, no more


def test_catalogue_rows_show_parsed_fields_only_for_a_complete_answer():
    answers = {
        "sft": ["Product: Check Scarf, Category: SCARVES, Full Price: 1290", "Product: Check Scarf"],
        "dpo": ["Category: SCARVES", "Product: Red Hat, Category: N.A., Full Price: $90"],
    }
    assert answer_rows(["a.jpg", "b.jpg"], answers, CATALOGUE_TASK) == [
        ["a.jpg", "sft", "Check Scarf", "SCARVES", "1,290.00", answers["sft"][0]],
        ["a.jpg", "dpo", "-", "-", "-", answers["dpo"][0]],
        ["b.jpg", "sft", "-", "-", "-", answers["sft"][1]],
        ["b.jpg", "dpo", "Red Hat", "N.A.", "90.00", answers["dpo"][1]],
    ]
    assert answer_rows(["a.jpg"], {"m": ["A cat."]}, FREE_TASK) == [["a.jpg", "m", "A cat."]]
    assert len(table_headers(CATALOGUE_TASK)) == 6 and table_headers(FREE_TASK) == ["photo", "model", "answer"]
    # A published task reads no fields: its answers show raw, as free questions do.
    assert table_headers(build_task(TaskConfig(task="docvqa"))) == ["photo", "model", "answer"]


def test_model_specs_and_questions():
    assert parse_model_specs(["sft=a/sft", "b/dpo"]) == {"sft": "a/sft", "dpo": "b/dpo"}
    with pytest.raises(ValueError, match="duplicate"):
        parse_model_specs(["a/m", "b/m"])
    assert check_question("  What is it? ") == "What is it?"
    with pytest.raises(ValueError, match="type a question"):
        check_question("  ")
    with pytest.raises(ValueError, match="special tokens"):
        check_question("<|image_1|>What is it?")


def test_examples_of_conversations_show_their_last_assistant_turn(tmp_path):
    question = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}
    answer = {"role": "assistant", "content": [{"type": "text", "text": "Red."}]}
    features = datasets.Features(
        {
            "images": datasets.Sequence(datasets.Image()),
            "messages": [
                {
                    "role": datasets.Value("string"),
                    "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}],
                }
            ],
        }
    )
    rows = [{"images": [Image.new("RGB", (32, 32), (200, 30, 30))], "messages": [question, answer]}]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows, features=features)}).save_to_disk(tmp_path / "d")
    examples = load_examples(tmp_path / "d", tmp_path / "examples", FREE_TASK)
    assert [example.truth for example in examples] == ["Red."]
    # The catalogue task asks conversational rows the same way: their last assistant turn is the truth.
    assert load_examples(tmp_path / "d", tmp_path / "again", CATALOGUE_TASK)[0].truth == "Red."


def test_examples_are_saved_with_their_true_answers(synthetic_catalogue, tmp_path):
    examples = load_examples(synthetic_catalogue, tmp_path, CATALOGUE_TASK, limit=3)
    test_rows = datasets.load_from_disk(str(synthetic_catalogue))["test"].select(range(3))
    assert [example.truth for example in examples] == [
        AnswerTemplate(DEFAULT_ANSWER_TEMPLATE).render(row) for row in test_rows
    ]
    assert all(Image.open(example.path).format == "JPEG" for example in examples)
    with pytest.raises(ValueError, match="has no split 'exam'; its splits are"):
        load_examples(synthetic_catalogue, tmp_path, CATALOGUE_TASK, split="exam")


def test_every_model_answers_every_photo(tiny_checkpoint, tmp_path):
    adapter = make_lora_adapter(tiny_checkpoint, tmp_path / "lora")
    photos = [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (40, 80), (30, 30, 200))]
    with one_torch_thread():
        # --base_model concerns the adapter; the full checkpoint beside it loads as it is.
        models = load_models({"base": str(tiny_checkpoint), "lora": str(adapter)}, base_model=str(tiny_checkpoint))
        assert isinstance(models["lora"][0], PeftModel) and not isinstance(models["base"][0], PeftModel)
        answers = answer_photos(models, photos, DEFAULT_QUESTION, batch_size=2, max_new_tokens=6)
        for name, (model, processor) in models.items():
            prompts = [build_prompt(processor, prompt_messages())] * 2
            expected = generate_answers(
                model, processor, prompts, [[photo] for photo in photos], max_new_tokens=6, show_progress=False
            )
            assert answers[name] == expected
    assert answers["base"] != answers["lora"]


@pytest.mark.parametrize("task, editable, columns", [(CATALOGUE_TASK, False, 6), (FREE_TASK, True, 3)])
def test_the_question_is_editable_in_free_mode_only(task, editable, columns):
    from phi3v.app.page import build_page  # imports gradio

    page = build_page({"m": (None, None)}, task=task)
    components = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}
    assert components["question"].interactive is editable
    assert len(components["answers"].headers) == columns
    assert "examples" not in components  # no --dataset, no example gallery
