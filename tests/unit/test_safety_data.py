"""Bad data for the training and evaluation scripts, as a user meets it: an unknown split, an empty split, a raw
catalogue table, a catalogue given to dpo.py, an unreadable answer template. Each stops before any model loads, with a
message that names the problem, and leaves the user's files as they were; DPO drops over-long pairs with a count."""

import csv
import logging

import datasets
from transformers import AutoProcessor

from phi3v.tasks.catalogue.negatives import HardNegatives, build_preference_pairs
from phi3v.training import Phi3VPreferenceCollator, add_length_column

from ..safety_helpers import output_of, run_script_here, tree_digest


MODEL_LOADS = "Loading weights"  # what transformers prints once it loads a checkpoint


def sft(tiny_checkpoint, dataset, output_dir, *overrides):
    return run_script_here(
        "sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name", dataset,
        "--output_dir", output_dir, "--max_steps", "1", *overrides,
    )  # fmt: skip


def test_an_unknown_split_lists_the_splits(tiny_checkpoint, synthetic_catalogue, tmp_path):
    before = tree_digest(synthetic_catalogue)
    result = sft(tiny_checkpoint, synthetic_catalogue, tmp_path / "run", "--dataset_test_split", "valid")
    assert result.returncode != 0
    assert "no split 'valid'; its splits are ['test', 'train', 'validation']" in output_of(result)
    assert MODEL_LOADS not in output_of(result) and tree_digest(synthetic_catalogue) == before


def test_an_empty_split_is_named(tiny_checkpoint, synthetic_catalogue, tmp_path):
    result = sft(tiny_checkpoint, synthetic_catalogue, tmp_path / "run", "--dataset_test_split", "validation[36:]")
    assert (
        result.returncode != 0 and "Split 'validation[36:]'" in output_of(result) and "is empty" in output_of(result)
    )
    assert MODEL_LOADS not in output_of(result)


def test_a_raw_catalogue_table_is_sent_to_data_preparation(tiny_checkpoint, tmp_path):
    table = tmp_path / "catalogue.csv"
    with table.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["product_code", "title", "category3_code", "full_price", "image"])
        writer.writerow(["1", "Check Scarf", "SCARVES", "590", "https://example.invalid/scarf.jpg"])
    before = tree_digest(table)
    result = sft(tiny_checkpoint, table, tmp_path / "run", "--eval_strategy", "no")
    assert result.returncode != 0 and "prepare_dataset.py" in output_of(result)
    assert MODEL_LOADS not in output_of(result) and tree_digest(table) == before


def test_an_unreadable_answer_template_stops_sft_naming_the_row(tiny_checkpoint, synthetic_catalogue, tmp_path):
    result = sft(tiny_checkpoint, synthetic_catalogue, tmp_path / "run", "--answer_template", "{title}{full_price}")
    assert result.returncode != 0 and "nothing between them" in output_of(result)
    # "Coat" labels the category, and also occurs in titles ("Beige Plain Trench Coat"): a coat's title cannot be read.
    result = sft(
        tiny_checkpoint,
        synthetic_catalogue,
        tmp_path / "run2",
        "--answer_template",
        "Title {title} Coat {category3_code}",
    )
    assert result.returncode != 0 and "cannot be read back: row " in output_of(result) and "Coat" in output_of(result)
    assert MODEL_LOADS not in output_of(result)


def test_dpo_on_a_catalogue_says_to_build_pairs_first(tiny_checkpoint, synthetic_catalogue, tmp_path):
    result = run_script_here(
        "dpo.py", "recipes/smoke/dpo-lora.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name",
        synthetic_catalogue, "--output_dir", tmp_path / "dpo",
    )  # fmt: skip
    assert result.returncode != 0
    assert "not preference pairs" in output_of(result) and "make_preferences.py" in output_of(result)
    assert MODEL_LOADS not in output_of(result)


def test_dpo_pairs_over_max_length_are_dropped_with_a_count(tiny_checkpoint, synthetic_catalogue, caplog):
    rows = datasets.load_from_disk(str(synthetic_catalogue))["train"].select(range(6))
    pairs = build_preference_pairs(list(rows), HardNegatives(rows.remove_columns("image")))
    pairs[0]["rejected"] = [{"role": "assistant", "content": "a very long wrong answer " * 40}]
    dataset = datasets.Dataset.from_list(pairs)
    collator = Phi3VPreferenceCollator(AutoProcessor.from_pretrained(tiny_checkpoint))
    lengths = add_length_column(dataset, collator)["length"]
    limit = sorted(lengths)[-2]
    with caplog.at_level(logging.WARNING, logger="phi3v"):
        kept = add_length_column(dataset, collator, max_length=limit)
    assert len(kept) == 5 and kept["product_code"] == [pair["product_code"] for pair in pairs[1:]]
    assert f"Dropped 1 of 6 rows longer than max_length={limit}" in caplog.text
    assert lengths[0] == max(lengths) > limit


def test_a_start_that_fails_on_its_data_leaves_no_run_behind(tiny_checkpoint, synthetic_catalogue, tmp_path):
    """The output directory is decided on first but written only when training starts: the corrected command is a new
    run, not "another run" refused by the failed start's `run_config.json`."""
    output_dir = tmp_path / "run"
    result = sft(tiny_checkpoint, synthetic_catalogue, output_dir, "--dataset_test_split", "valid")
    assert result.returncode != 0 and "no split 'valid'" in output_of(result)
    assert not output_dir.exists()
    corrected = sft(tiny_checkpoint, synthetic_catalogue, output_dir, "--eval_strategy", "no", "--save_strategy", "no")
    assert corrected.returncode == 0, output_of(corrected)[-3000:]
    assert (output_dir / "run_config.json").is_file() and (output_dir / "model.safetensors").is_file()
