"""Local tables as people have them (`phi3v.data.tables`, `phi3v.preparation.prices`): every encoding and delimiter
read to the exact values, prices in every locale's notation read or refused per row, and a table that cannot be read
stopped with the file, the line and what to pass, before any model loads and without touching a file."""

import codecs
import json

import datasets
import pytest

from phi3v.data.loading import load_splits
from phi3v.data.tables import check_delimiter, check_encoding, open_csv
from phi3v.errors import DataError, UsageError
from phi3v.preparation.prices import AmbiguousPrice, decimal_mark, parse_price

from ..data_helpers_images import jpeg
from ..safety_helpers import output_of, run_script_here, tree_digest


TITLES = ["Écharpe à carreaux", "Sac « Cœur » £", "Trench, beige €"]
MODEL_LOADS = "Loading weights"  # what transformers prints once it loads a checkpoint


def table_text(delimiter=";", prices=("590,00", "1.290,50", "12 345,5")) -> str:
    lines = [delimiter.join(["product_code", "title", "full_price"])]
    for code, (title, price) in enumerate(zip(TITLES, prices, strict=True)):
        quoted = f'"{title}"' if delimiter in title or "," in title else title
        lines.append(delimiter.join([f"00{code}", quoted, f'"{price}"' if delimiter in price else price]))
    return "\r\n".join(lines) + "\r\n"


ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8-sig": lambda text: text.encode("utf-8-sig"),
    "utf-16": lambda text: text.encode("utf-16"),
    "utf-16-le-bom": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16-be-bom": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-16-le-no-bom": lambda text: text.encode("utf-16-le"),
    "cp1252": lambda text: text.encode("cp1252"),
    "latin-1": lambda text: text.replace("Œ", "OE").replace("œ", "oe").replace("€", "EUR").encode("latin-1"),
}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_every_encoding_reads_the_exact_titles(tmp_path, name):
    path = tmp_path / "table.csv"
    path.write_bytes(ENCODINGS[name](table_text()))
    rows = load_splits(str(path), ["train"])["train"].to_list()
    expected = [title.replace("Œ", "OE").replace("œ", "oe").replace("€", "EUR") if name == "latin-1" else title
                for title in TITLES]  # fmt: skip
    assert [row["title"] for row in rows] == expected
    assert [row["full_price"] for row in rows] == ["590,00", "1.290,50", "12 345,5"]
    assert open_csv(path).delimiter == ";"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_every_delimiter_is_detected_and_quoted_fields_keep_theirs(tmp_path, delimiter):
    path = tmp_path / "table.csv"
    path.write_text(table_text(delimiter, prices=("590.00", "1,290.50", "12,345.5")), encoding="utf-8")
    table = open_csv(path)
    assert (table.delimiter, table.columns, table.num_rows) == (delimiter, ["product_code", "title", "full_price"], 3)
    rows = load_splits(str(path), ["train"])["train"].to_list()
    assert [row["title"] for row in rows] == TITLES  # "Trench, beige €" keeps its comma
    assert [row["full_price"] for row in rows] == ["590.00", "1,290.50", "12,345.5"]


def test_excel_sep_line_and_explicit_choices(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"sep=;\r\n" + table_text().encode("cp1252"))
    assert load_splits(str(path), ["train"])["train"]["title"] == TITLES
    # Given: the flag wins over detection (a one-column reading of the same file).
    assert open_csv(path, encoding="latin-1", delimiter="|").columns == ["product_code;title;full_price"]
    assert check_encoding("Windows-1252") == "cp1252" and check_delimiter("\\t") == check_delimiter("tab") == "\t"
    with pytest.raises(UsageError, match="'klingon' is not a text encoding"):
        check_encoding("klingon")
    with pytest.raises(UsageError, match="is not a text encoding"):
        check_encoding("base64")
    with pytest.raises(UsageError, match="one character"):
        check_delimiter(";;")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"a,b\n1,2\n3,4,5\n",
            (
                r"bad.csv \(utf-8, comma-delimited\) line 3 has 3 fields where the header \(line 1\) "
                r"has 2\. Quote values that contain ',', or pass --delimiter"
            ),
        ),
        (b"a;b\n1;2,5\n", None),  # fine: the control case
        (
            "a;b\n\xe9;1\n".encode() + b"x\xe9;2\n",
            (
                r"mixes encodings: line 2 has UTF-8 characters, line 3 has byte "
                r"0xe9.*--encoding cp1252"
            ),
        ),
        ("a;b\nШарф;1\n".encode("cp1251"), r"line 2 reads 'Øàðô': pass the file's encoding with --encoding"),
        (b"a;b,c\n1;2,3\n", r"split into 2 columns by comma and by semicolon alike; pass --delimiter ','"),
        (b"a,a\n1,2\n", r"names column\(s\) \['a'\] twice"),
        (b"a,b\n1,2\n3,\x004\n", r"bad.csv line 3 has a NUL byte"),
        (b'a,b\n1,"open\n2,3\n', r"line 2 cannot be read: unexpected end of data"),
    ],
)
def test_unreadable_tables_name_the_file_the_line_and_the_way_out(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    if message is None:
        assert open_csv(path).num_rows == 1
        return
    with pytest.raises(DataError, match=message):
        load_splits(str(path), ["train"])


def test_a_wrong_explicit_encoding_names_the_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a;b\nx;1\nÉté;2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv line 3: byte 0xc9 is not valid utf-8; pass the file's encoding"):
        open_csv(path, encoding="utf-8")
    assert open_csv(path, encoding="latin-1").encoding == "iso8859-1"


@pytest.mark.parametrize(
    ("cell", "mark", "price"),
    [
        ("1234.5", ".", 1234.5),
        ("1,234.50", None, 1234.5),
        ("1.234,50", None, 1234.5),
        ("1234,5", None, 1234.5),
        ("1 234,50", None, 1234.5),
        ("1\u00a0234,50 €", None, 1234.5),
        ("€1.234,56", None, 1234.56),
        ("$1,234.00", None, 1234.0),
        ("USD 1,290", ".", 1290.0),
        ("1.290", ",", 1290.0),
        ("CHF 1'234.50", None, 1234.5),
        ("590,-", None, 590.0),
        ("1.234,-", None, 1234.0),
        ("1.234.567,89 EUR", None, 1234567.89),
        (590, None, 590.0),
    ],
)
def test_prices_in_every_notation(cell, mark, price):
    assert parse_price(cell, mark) == price


@pytest.mark.parametrize(
    ("cell", "mark", "error", "reason"),
    [
        ("1,290", None, AmbiguousPrice, "may mean 1290 or 1.290"),
        ("1.290", None, AmbiguousPrice, "may mean 1290 or 1.290"),
        ("1,290", ",", AmbiguousPrice, "three decimals"),
        ("12 99", ".", ValueError, "groups its thousands wrongly"),
        ("1,29,0", ".", ValueError, "groups its thousands wrongly"),
        ("99¢", ".", ValueError, "is not an amount"),
        ("-5", ".", ValueError, "is not an amount"),
        ("0,00", ".", ValueError, "not a positive amount"),
    ],
)
def test_prices_that_are_ambiguous_or_wrong_are_refused_with_the_reason(cell, mark, error, reason):
    with pytest.raises(error, match=reason):
        parse_price(cell, mark)


def test_a_tables_decimal_mark_comes_from_its_cells_then_its_delimiter():
    assert decimal_mark(["590,00", "1.290"]) == ","
    assert decimal_mark(["1,234.50", "1,290"], ";") == "."  # the cells win over the delimiter
    assert decimal_mark(["1.234.567", "1.290"]) == ","
    assert (decimal_mark(["1.290"], ";"), decimal_mark(["1,290"], ",")) == (",", ".")
    assert decimal_mark(["1,290"], "\t") is None and decimal_mark(["590,00", "590.00"], ";") is None


def write_catalogue(folder, content: bytes):
    folder.mkdir(exist_ok=True)
    for index in range(4):
        (folder / f"{index}.jpg").write_bytes(jpeg(size=(40 + index, 30)))
    (folder / "catalogue.csv").write_bytes(content)
    return folder / "catalogue.csv"


def catalogue_text(prices: list[str], image_column: str = "imageurl") -> str:
    header = f"product_code;title;category1_code;category2_code;category3_code;full_price;{image_column}\r\n"
    lines = [f"00{i};{TITLES[i % 3]};WOMEN;BAGS;TOTES;{price};{i}.jpg\r\n" for i, price in enumerate(prices)]
    return header + "".join(lines)


def prepare(table, output_dir, *flags):
    return run_script_here(
        "prepare_dataset.py", "--source", table, "--output_dir", output_dir, "--cache_dir", table.parent / "cache",
        "--no_progress", "--validation_fraction", "0", "--test_fraction", "0", *flags,
    )  # fmt: skip


def test_prepare_reads_a_cp1252_semicolon_table_with_decimal_commas_and_reports_the_ambiguous_row(tmp_path):
    table = write_catalogue(
        tmp_path / "shop", catalogue_text(["590,00", "1.290,50", "1.290", "12,345"]).encode("cp1252")
    )
    result = prepare(table, tmp_path / "out")
    assert result.returncode == 0, output_of(result)
    rows = datasets.load_from_disk(str(tmp_path / "out"))["train"].remove_columns("image").to_list()
    assert [(row["title"], row["full_price"]) for row in rows] == [
        (TITLES[0], 590.0), (TITLES[1], 1290.5), (TITLES[2], 1290.0)
    ]  # fmt: skip
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"]["encoding"] == "cp1252" and manifest["source"]["delimiter"] == ";"
    assert manifest["price_decimal_mark"] == "," and manifest["rows_dropped"] == {"ambiguous_price": 1}
    dropped = json.loads((tmp_path / "out" / "dropped.jsonl").read_text())
    assert dropped["source_row"] == 3 and "'12,345' would have three decimals" in dropped["detail"]


@pytest.mark.parametrize(
    ("content", "flags", "status", "message"),
    [
        (
            catalogue_text(["590,00"]).encode("cp1252"),
            ["--encoding", "utf-8"],
            1,
            "catalogue.csv line 2: byte 0xc9 is not valid utf-8; pass the file's encoding with --encoding",
        ),
        (
            catalogue_text(["590,00"]).encode() + b"9;x;A;B;C;5;0.jpg;extra\r\n",
            [],
            1,
            "catalogue.csv (utf-8, semicolon-delimited) line 3 has 8 fields where the header (line 1) has 7",
        ),
        (catalogue_text(["590,00"]).encode(), ["--encoding", "klingon"], 2, "--encoding 'klingon' is not a text"),
        (catalogue_text(["590,00"]).encode(), ["--delimiter", "ab"], 2, "--delimiter must be one character"),
    ],
)
def test_prepare_stops_on_an_unreadable_table_and_changes_nothing(tmp_path, content, flags, status, message):
    table = write_catalogue(tmp_path / "shop", content)
    before = tree_digest(tmp_path)
    result = prepare(table, tmp_path / "out", *flags)
    assert result.returncode == status and message in result.stderr, output_of(result)
    assert "Traceback" not in output_of(result) and result.stderr.count("\n") == 1
    assert tree_digest(tmp_path) == before and not (tmp_path / "out").exists()


def test_sft_stops_on_an_unreadable_table_before_the_model_loads(tiny_checkpoint, tmp_path):
    table = tmp_path / "train.csv"
    table.write_bytes(b"images,messages\n1,2\n3,4,5\n")
    before = tree_digest(tmp_path)
    result = run_script_here(
        "sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name", table,
        "--output_dir", tmp_path / "run", "--max_steps", "1", "--eval_strategy", "no",
    )  # fmt: skip
    assert result.returncode == 1 and "train.csv (utf-8, comma-delimited) line 3 has 3 fields" in result.stderr
    assert MODEL_LOADS not in output_of(result) and tree_digest(tmp_path) == before
    result = run_script_here(
        "sft.py", "recipes/smoke/sft-full.yaml", "--model_name_or_path", tiny_checkpoint, "--dataset_name", table,
        "--output_dir", tmp_path / "run", "--delimiter", "semicolon",
    )  # fmt: skip
    assert result.returncode == 2 and "--delimiter must be one character" in result.stderr


def test_evaluate_sends_a_raw_catalogue_table_to_preparation(tiny_checkpoint, tmp_path):
    text = catalogue_text(["590,00", "1.290"], "image").replace(";0.jpg", ";https://example.invalid/0.jpg")
    table = write_catalogue(
        tmp_path / "shop", text.replace(";1.jpg", ";https://example.invalid/1.jpg").encode("cp1252")
    )
    before = tree_digest(tmp_path)
    result = run_script_here(
        "evaluate.py", "--dataset", table, "--split", "train", "--model", f"m={tiny_checkpoint}",
        "--output_dir", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode == 1 and "prepare_dataset.py" in result.stderr, output_of(result)
    assert MODEL_LOADS not in output_of(result) and tree_digest(tmp_path) == before
