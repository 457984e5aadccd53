"""Any image-text layout trains: TRL `messages` (list content) and `prompt`/`completion`, the_cauldron (2 images, 3
turns), LLaVA JSON, DocVQA-style and a catalogue with a custom template. Labels are exactly the assistant turns and
their <|end|>; a mixed batch equals each row alone; lengths come from image headers; datasets load from every source."""

import functools
import json

import datasets
import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401
from phi3v.data.formats import detect_format, row_converter
from phi3v.data.image_columns import image_size, undecoded
from phi3v.data.loading import load_splits
from phi3v.tasks.catalogue import AnswerTemplate, to_conversation
from phi3v.training import Phi3VSFTCollator, add_length_column


RED, BLUE = Image.new("RGB", (300, 200), (200, 30, 40)), Image.new("RGB", (100, 400), (30, 40, 200))


def trl_messages_row():
    return {
        "images": [RED, BLUE],
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Colours?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Red and blue."}]},
            {"role": "user", "content": [{"type": "text", "text": "Which is taller?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "The blue one."}]},
        ],
    }


def prompt_completion_row():
    return {
        "images": [RED],
        "prompt": [
            {"role": "user", "content": "<|image_1|>What colour?"},
            {"role": "assistant", "content": "Red."},  # part of the prompt: not trained
            {"role": "user", "content": "Sure?"},
        ],
        "completion": [{"role": "assistant", "content": "Yes, red."}],
    }


def cauldron_row():
    texts = [
        {"user": "Left colour?", "assistant": "Red.", "source": "fixture"},
        {"user": "Right colour?", "assistant": "Blue.", "source": "fixture"},
        {"user": "Same colour?", "assistant": "No.", "source": "fixture"},
    ]
    return {"images": [RED, BLUE], "texts": texts}


def docvqa_row():
    query = {"de": "Farbe?", "en": "What colour is it?", "es": "", "fr": "", "it": ""}
    return {"id": "q1", "image": RED, "query": query, "answers": ["red", "Red"], "words": [], "bounding_boxes": []}


CATALOGUE_TEMPLATE = AnswerTemplate("{title} | {category3_code} | ${full_price}")
CATALOGUE_ROW = {"image": BLUE, "title": "Blue Coat", "category3_code": "COATS", "full_price": 1290.0}
TEXT_ONLY_ROW = {
    "images": [],
    "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
}


@pytest.fixture(scope="module")
def processor(tiny_checkpoint):
    return AutoProcessor.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def llava_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llava")
    (folder / "images").mkdir()
    RED.save(folder / "images" / "red.png")
    BLUE.save(folder / "images" / "blue.png")
    rows = [
        {
            "id": "a",
            "image": ["images/red.png", "images/blue.png"],
            "conversations": [
                {"from": "human", "value": "<image>\n<image>\nCompare them."},
                {"from": "gpt", "value": "Red is wider."},
            ],
        },
        {"id": "b", "conversations": [{"from": "human", "value": "Text only?"}, {"from": "gpt", "value": "Yes."}]},
    ]
    path = folder / "llava.json"
    path.write_text(json.dumps(rows))
    return path


def converted(row, dataset_format, **kwargs):
    _, converter = row_converter(dataset_format, list(row), **kwargs)
    return row if converter is None else converter(row)


def trained_texts(processor, batch, index):
    """The decoded runs of labelled tokens of one row."""
    labels = batch["labels"][index]
    runs, current = [], []
    for position, label in enumerate(labels.tolist()):
        if label != -100:
            assert label == int(batch["input_ids"][index, position])
            current.append(label)
        elif current:
            runs.append(processor.tokenizer.decode(current))
            current = []
    return runs + ([processor.tokenizer.decode(current)] if current else [])


def all_rows(llava_file):
    llava = datasets.load_dataset("json", data_files=str(llava_file), split="train")
    catalogue = functools.partial(to_conversation, template=CATALOGUE_TEMPLATE)
    return {
        "messages": trl_messages_row(),
        "prompt_completion": prompt_completion_row(),
        "the_cauldron": converted(cauldron_row(), "the_cauldron"),
        "llava": converted(llava[0], "llava", image_folder=llava_file.parent),
        "llava_text_only": converted(llava[1], "llava", image_folder=llava_file.parent),
        "docvqa": converted(docvqa_row(), "docvqa"),
        "catalogue": converted(CATALOGUE_ROW, "catalogue", catalogue_converter=catalogue),
        "text_only": TEXT_ONLY_ROW,
    }


EXPECTED_LABELS = {
    "messages": ["Red and blue.<|end|>", "The blue one.<|end|>"],
    "prompt_completion": ["Yes, red.<|end|>"],
    "the_cauldron": ["Red.<|end|>", "Blue.<|end|>", "No.<|end|>"],
    "llava": ["Red is wider.<|end|>"],
    "llava_text_only": ["Yes.<|end|>"],
    "docvqa": ["red<|end|>"],
    "catalogue": ["Blue Coat | COATS | $1,290.00<|end|>"],
    "text_only": ["Hello!<|end|>"],
}
EXPECTED_IMAGES = {
    "messages": 2, "prompt_completion": 1, "the_cauldron": 2, "llava": 2, "llava_text_only": 0, "docvqa": 1,
    "catalogue": 1, "text_only": 0,
}  # fmt: skip


def test_labels_are_exactly_the_assistant_turns_and_their_end(processor, llava_file):
    rows = all_rows(llava_file)
    collator = Phi3VSFTCollator(processor)
    batch = collator(list(rows.values()))
    for index, name in enumerate(rows):
        assert trained_texts(processor, batch, index) == EXPECTED_LABELS[name], name
        image_tokens = int((batch["input_ids"][index] < 0).sum())
        assert (image_tokens > 0) == (EXPECTED_IMAGES[name] > 0), name
    assert batch["pixel_values"].shape[0] == sum(EXPECTED_IMAGES.values())
    assert (batch["labels"][batch["input_ids"] < 0] == -100).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_tags_follow_the_layouts(processor, llava_file):
    rows = all_rows(llava_file)
    contents = {
        name: Phi3VSFTCollator(processor).conversation(row).messages[0]["content"] for name, row in rows.items()
    }
    assert contents["messages"] == "<|image_1|>\n<|image_2|>\nColours?"
    assert contents["the_cauldron"] == "<|image_1|><|image_2|>\nLeft colour?"
    assert contents["llava"] == "<|image_1|>\n<|image_2|>\nCompare them."
    assert contents["docvqa"] == "<|image_1|>\nWhat colour is it?\nAnswer briefly."
    assert contents["catalogue"] == "<|image_1|>What is shown in this image?"


def test_a_mixed_batch_equals_each_row_alone(processor, llava_file):
    rows = list(all_rows(llava_file).values())
    collator = Phi3VSFTCollator(processor)
    batch = collator(rows)
    image_start = 0
    for index, row in enumerate(rows):
        alone = collator([row])
        length = int(batch["attention_mask"][index].sum())
        assert length == alone["input_ids"].shape[1] == collator.sequence_length(row)
        assert torch.equal(batch["input_ids"][index, :length], alone["input_ids"][0])
        assert torch.equal(batch["labels"][index, :length], alone["labels"][0])
        if "pixel_values" in alone:
            count = alone["pixel_values"].shape[0]
            assert torch.equal(batch["pixel_values"][image_start : image_start + count], alone["pixel_values"])
            image_start += count


def test_a_mixed_batch_trains_the_model(processor, tiny_checkpoint, llava_file):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    loss = model(**Phi3VSFTCollator(processor)(list(all_rows(llava_file).values()))).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.model.vision_embed_tokens.img_projection[0].weight.grad.abs().sum() > 0


def test_a_row_without_an_assistant_turn_or_with_wrong_tags_is_a_clear_error(processor):
    collator = Phi3VSFTCollator(processor)
    with pytest.raises(ValueError, match="no assistant turn"):
        collator([{"images": [], "messages": [{"role": "user", "content": "Hi"}]}])
    wrong_tags = {
        "images": [RED],
        "messages": [{"role": "user", "content": "<|image_2|>?"}, *TEXT_ONLY_ROW["messages"][1:]],
    }
    with pytest.raises(ValueError, match="must be exactly"):
        collator([wrong_tags])
    with pytest.raises(ValueError, match="conversational prompt/completion"):
        collator([{"images": [], "prompt": "Hi", "completion": "Hello"}])
    with pytest.raises(ValueError, match="dataset_format"):
        collator([{"image": RED, "caption": "red"}])


def test_lengths_are_read_from_headers_with_exif_rotation(tmp_path):
    photo = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: the processor sees 200 x 300
    RED.save(photo, exif=exif)
    assert image_size(str(photo)) == (200, 300)
    assert image_size({"bytes": photo.read_bytes(), "path": None}) == (200, 300)


def test_length_column_and_max_length_filter_on_conversational_data(processor):
    rows = [trl_messages_row(), TEXT_ONLY_ROW]
    features = datasets.Features(
        {
            "images": datasets.List(datasets.Image()),
            "messages": datasets.List(
                {
                    "role": datasets.Value("string"),
                    "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")}),
                }
            ),
        }
    )
    structured = [
        {
            "images": row["images"],
            "messages": [{"role": m["role"], "content": _parts(m["content"])} for m in row["messages"]],
        }
        for row in rows
    ]
    dataset = datasets.Dataset.from_list(structured, features=features)
    collator = Phi3VSFTCollator(processor)
    lengths = add_length_column(dataset, collator)["length"]
    assert lengths == [collator.sequence_length(row) for row in dataset]
    assert len(add_length_column(dataset, collator, max_length=min(lengths))) == 1


def _parts(content):
    return (
        [
            {
                "type": "text",
                "text": content,
            }
        ]
        if isinstance(content, str)
        else [{"type": p["type"], "text": p.get("text")} for p in content]
    )


def test_detect_format():
    assert detect_format(["images", "messages"]) == "conversational"
    assert detect_format(["image", "prompt", "completion"]) == "conversational"
    assert detect_format(["image", "title", "category3_code", "full_price", "product_code"]) == "catalogue"
    assert detect_format(["images", "texts"]) == "the_cauldron"
    assert detect_format(["id", "image", "conversations"]) == "llava"
    assert detect_format(["id", "image", "query", "answers", "words"]) == "docvqa"
    with pytest.raises(ValueError, match="Cannot tell the layout"):
        detect_format(["image", "caption"])
    with pytest.raises(ValueError, match="needs the columns"):
        row_converter("the_cauldron", ["image", "messages"])
    with pytest.raises(ValueError, match="Unknown dataset_format"):
        row_converter("coco", ["image"])


def test_load_splits_from_disk_files_and_slices(tmp_path):
    dataset = datasets.Dataset.from_dict({"x": list(range(10))})
    datasets.DatasetDict({"train": dataset, "test": dataset.select(range(3))}).save_to_disk(tmp_path / "dict")
    splits = load_splits(str(tmp_path / "dict"), ["train[5:]", "train[:5]", "test", "train[:20%]"])
    assert [splits[s]["x"] for s in splits] == [[5, 6, 7, 8, 9], [0, 1, 2, 3, 4], [0, 1, 2], [0, 1]]
    dataset.to_parquet(tmp_path / "rows.parquet")
    dataset.to_json(tmp_path / "rows.jsonl")
    for name in ("rows.parquet", "rows.jsonl"):
        assert load_splits(str(tmp_path / name), ["train[-2:]"])["train[-2:]"]["x"] == [8, 9]
    with pytest.raises(ValueError, match=r"no split 'valid'; its splits are \['test', 'train'\]"):
        load_splits(str(tmp_path / "dict"), ["valid"])
    with pytest.raises(ValueError, match="is empty"):
        load_splits(str(tmp_path / "dict"), ["train[10:]"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_splits(str(tmp_path / "missing"), ["train"])
    assert len(undecoded(dataset)) == 10


def test_split_strings_are_read_by_datasets_split_parsing(tmp_path):
    dataset = datasets.Dataset.from_dict({"x": list(range(10))})
    datasets.DatasetDict({"train": dataset, "test": dataset.select(range(3))}).save_to_disk(tmp_path / "dict")
    splits = load_splits(str(tmp_path / "dict"), ["train[-10%:]+test[:1]", "train[25%:35%]"])
    assert [splits[s]["x"] for s in splits] == [[9, 0], [2, 3]]  # 2.5 rounds to 2, as in `datasets`
    with pytest.raises(ValueError, match=r"Bad split 'train\[a:\]'"):
        load_splits(str(tmp_path / "dict"), ["train[a:]"])
    with pytest.raises(ValueError, match=r"no split 'valid'"):
        load_splits(str(tmp_path / "dict"), ["train+valid"])
    with pytest.raises(ValueError, match="less than 100 elements"):
        load_splits(str(tmp_path / "dict"), ["train[:50%](pct1_dropremainder)"])


def test_images_inside_the_content_parts_are_the_rows_images(processor):
    inline = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": RED},
                    {"type": "image", "image": BLUE},
                    {"type": "text", "text": "Colours?"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Red and blue."}]},
            {"role": "user", "content": [{"type": "text", "text": "Which is taller?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "The blue one."}]},
        ]
    }
    collator = Phi3VSFTCollator(processor)
    batch, reference = collator([inline]), collator([trl_messages_row()])
    for key in ("input_ids", "labels", "pixel_values"):
        assert torch.equal(batch[key], reference[key])
