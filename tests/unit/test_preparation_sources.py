import json

import datasets
import pytest

from phi3v.errors import DataError
from phi3v.preparation.sources import CATALOGUE_FIELDS, DEFAULT_COLUMN_MAPPING, load_source


DBQ_ROWS = [
    {"product_code": 80712345, "title": "Check Scarf", "category1_code": "WOMAN", "category2_code": "SCARVES",
     "category3_code": "N.A.", "full_price": 590.0, "imageurl": "https://assets.example.com/a.jpg", "brand": "B"},
    {"product_code": 80712346, "title": "Trench Coat", "category1_code": "MAN", "category2_code": "OUTERWEAR",
     "category3_code": "TRENCH", "full_price": 2290.0, "imageurl": "shots/b.jpg", "brand": "B"},
]  # fmt: skip


def test_parquet_and_jsonl_read_the_same_rows_with_the_default_mapping(tmp_path):
    datasets.Dataset.from_list(DBQ_ROWS).to_parquet(str(tmp_path / "catalogue.parquet"))
    (tmp_path / "catalogue.jsonl").write_text("".join(json.dumps(row) + "\n" for row in DBQ_ROWS) + "\n")

    parquet = load_source(tmp_path / "catalogue.parquet")
    jsonl = load_source(str(tmp_path / "catalogue.jsonl"))

    expected = [{field: row[DEFAULT_COLUMN_MAPPING[field]] for field in CATALOGUE_FIELDS} for row in DBQ_ROWS]
    assert parquet.rows == jsonl.rows == expected
    assert parquet.base_dir == tmp_path.resolve()
    assert parquet.description["kind"] == "local_file"
    assert parquet.description["fingerprint"] != jsonl.description["fingerprint"]
    assert load_source(tmp_path / "catalogue.jsonl").description == jsonl.description  # same file, same fingerprint


def test_csv_values_stay_strings_so_codes_keep_leading_zeros(tmp_path):
    (tmp_path / "catalogue.csv").write_text(
        'sku,name,c1,c2,c3,price,picture\n00123,Wallet,MEN,ACCESSORIES,N.A.,"$1,290.00",a.jpg\n'
    )
    mapping = {"product_code": "sku", "title": "name", "category1_code": "c1", "category2_code": "c2",
               "category3_code": "c3", "full_price": "price", "image": "picture"}  # fmt: skip
    table = load_source(tmp_path / "catalogue.csv", column_mapping=mapping)
    assert table.rows == [
        {"product_code": "00123", "title": "Wallet", "category1_code": "MEN", "category2_code": "ACCESSORIES",
         "category3_code": "N.A.", "full_price": "$1,290.00", "image": "a.jpg"}
    ]  # fmt: skip
    assert table.description["column_mapping"]["image"] == "picture"


def test_a_hub_id_is_read_with_load_dataset_and_fingerprinted_by_content(monkeypatch):
    calls = []

    def fake_load_dataset(path, split):
        calls.append((path, split))
        return datasets.Dataset.from_list(DBQ_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    table = load_source("DBQ/Burberry.Product.prices.United.States")
    assert calls == [("DBQ/Burberry.Product.prices.United.States", "train")]
    assert table.rows[1]["image"] == "shots/b.jpg"
    assert table.description["kind"] == "hub"
    assert (
        table.description["fingerprint"]
        == load_source("DBQ/Burberry.Product.prices.United.States").description["fingerprint"]
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda path, split: datasets.Dataset.from_list(DBQ_ROWS[:1]))
    assert (
        load_source("DBQ/Burberry.Product.prices.United.States").description["fingerprint"]
        != table.description["fingerprint"]
    )


def test_missing_column_error_names_it_and_lists_what_exists(tmp_path):
    datasets.Dataset.from_list(DBQ_ROWS).to_parquet(str(tmp_path / "catalogue.parquet"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['image_path'\].*'imageurl'"):
        load_source(tmp_path / "catalogue.parquet", column_mapping={"image": "image_path"})


def test_unknown_field_in_the_mapping_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown field.*'price'"):
        load_source(tmp_path / "catalogue.parquet", column_mapping={"price": "full_price"})


def test_bad_local_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_source(tmp_path / "absent.parquet")
    (tmp_path / "bad.jsonl").write_text(json.dumps(DBQ_ROWS[0]) + "\n[1, 2]\n")
    with pytest.raises(DataError, match="line 2 is a list"):
        load_source(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1 is not valid JSON"):
        load_source(tmp_path / "broken.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="has no rows"):
        load_source(tmp_path / "empty.jsonl")


def test_jsonl_rows_may_omit_keys(tmp_path):
    rows = [DBQ_ROWS[0], {key: value for key, value in DBQ_ROWS[1].items() if key != "category3_code"}]
    (tmp_path / "catalogue.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert load_source(tmp_path / "catalogue.jsonl").rows[1]["category3_code"] is None


def test_rows_keep_values_of_mixed_types_and_a_table_without_rows_is_refused(tmp_path):
    rows = [DBQ_ROWS[0], {**DBQ_ROWS[1], "full_price": "call us"}]
    (tmp_path / "catalogue.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [row["full_price"] for row in load_source(tmp_path / "catalogue.jsonl").rows] == [590.0, "call us"]
    (tmp_path / "header.csv").write_text("product_code,title\n\n")
    with pytest.raises(DataError, match="has no rows"):
        load_source(tmp_path / "header.csv")
