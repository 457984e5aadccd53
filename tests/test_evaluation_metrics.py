import json
import math

import pytest
from PIL import Image

from phi3v.evaluation.baselines import (
    category_median_prices,
    global_median_predictions,
    global_median_price,
    true_category_median_predictions,
)
from phi3v.evaluation.metrics import (
    build_records,
    levenshtein_distance,
    normalised_edit_similarity,
    score_predictions,
)
from phi3v.evaluation.parsing import ParsedAnswer, parse_answer
from phi3v.evaluation.report import (
    format_report_table,
    plot_price_scatter,
    write_metrics_json,
    write_predictions_jsonl,
    write_report,
)


TRAIN_ROWS = [
    {"title": "Check Scarf", "category3_code": "Scarves", "full_price": 100.0},
    {"title": "Wool Scarf", "category3_code": "Scarves", "full_price": 200.0},
    {"title": "Trench Coat", "category3_code": "Coats", "full_price": 300.0},
    {"title": "Perfume", "category3_code": "N.A.", "full_price": 1000.0},
]
TEST_ROWS = [
    {"title": "Cashmere Scarf", "category3_code": "Scarves", "full_price": 150.0},
    {"title": "Tote Bag", "category3_code": "Bags", "full_price": 1000.0},
]


@pytest.mark.parametrize(("a", "b", "distance"), [("kitten", "sitting", 3), ("", "abc", 3), ("flaw", "lawn", 2)])
def test_levenshtein_distance(a, b, distance):
    assert levenshtein_distance(a, b) == distance
    assert levenshtein_distance(b, a) == distance


@pytest.mark.parametrize(
    ("a", "b", "threshold", "similarity"),
    [
        ("abc", "abc", 0.5, 1.0),
        ("kitten", "sitting", 0.5, 4 / 7),
        ("abc", "xyz", 0.5, 0.0),
        # A distance of exactly the threshold scores 0; threshold 1 gives the plain similarity.
        ("abcd", "abxy", 0.5, 0.0),
        ("abcd", "abxy", 1.0, 0.5),
        ("", "", 0.5, 1.0),
        ("", "abc", 0.5, 0.0),
        ("  Check   SCARF ", "check scarf", 0.5, 1.0),
        ("Straße", "STRASSE", 0.5, 1.0),
    ],
)
def test_normalised_edit_similarity(a, b, threshold, similarity):
    assert normalised_edit_similarity(a, b, threshold=threshold) == pytest.approx(similarity, abs=1e-12)


def hand_computed_records():
    return [
        # Everything right up to case and spacing; price off by exactly 10%.
        {
            "title": "Check Cashmere Scarf",
            "category": "Scarves",
            "price": 500.0,
            "prediction": ParsedAnswer("check  cashmere scarf", "Scarves", 550.0),
        },
        # Title one edit away (ANLS 11/12), wrong category, price off by 25%.
        {
            "title": "Trench Coat",
            "category": "Coats",
            "price": 2000.0,
            "prediction": ParsedAnswer("Trench Coats", "Jackets", 1500.0),
        },
        # No price: scored as $0, i.e. 100% error.
        {"title": "Bag", "category": "N.A.", "price": 1000.0, "prediction": ParsedAnswer("Bag", "n.a.", None)},
        # Price only: title and category count as wrong.
        {"title": "Belt", "category": "Belts", "price": 400.0, "prediction": ParsedAnswer(None, None, 100.0)},
    ]


def test_score_predictions_on_hand_computed_example():
    metrics = score_predictions(hand_computed_records())
    log_errors = [math.log(551 / 501), math.log(1501 / 2001), math.log(1 / 1001), math.log(101 / 401)]
    expected = {
        "num_samples": 4,
        "parse_rate": 0.5,
        "title_exact_match": 0.5,
        "title_anls": (1 + 11 / 12 + 1 + 0) / 4,
        "category_accuracy": 0.5,
        "price_coverage": 0.75,
        "price_mae": (50 + 500 + 1000 + 300) / 4,
        "price_mape": (0.1 + 0.25 + 1.0 + 0.75) / 4,
        "price_median_ape": (0.25 + 0.75) / 2,
        "price_within_10pct": 0.25,
        "price_within_25pct": 0.5,
        "price_rmse_log": math.sqrt(sum(error**2 for error in log_errors) / 4),
        "price_mape_parsed": (0.1 + 0.25 + 0.75) / 3,
    }
    assert list(metrics) == list(expected)
    assert metrics == pytest.approx(expected, rel=1e-12)
    assert isinstance(metrics["num_samples"], int)


def test_score_predictions_perfect_and_all_unparseable():
    truth = {"title": "Check, Wool Scarf", "category": "N.A.", "price": 1290.0}
    perfect = score_predictions(
        [{**truth, "prediction": parse_answer("Product: Check, Wool Scarf, Category: N.A., Full Price: $1,290.00")}]
    )
    assert perfect["parse_rate"] == perfect["title_anls"] == perfect["category_accuracy"] == 1.0
    assert perfect["price_mae"] == perfect["price_mape"] == perfect["price_rmse_log"] == 0.0

    garbage = score_predictions([{**truth, "prediction": parse_answer("Check Scarf, 1290")}] * 3)
    assert garbage["parse_rate"] == garbage["title_anls"] == garbage["price_coverage"] == 0.0
    assert garbage["price_mape"] == garbage["price_median_ape"] == 1.0
    assert garbage["price_mae"] == 1290.0
    assert garbage["price_rmse_log"] == pytest.approx(math.log(1291.0))
    assert garbage["price_mape_parsed"] is None


@pytest.mark.parametrize("bad_price", [0.0, -5.0, float("nan"), None])
def test_score_predictions_rejects_broken_truth(bad_price):
    with pytest.raises((ValueError, TypeError)):
        score_predictions([{"title": "Bag", "category": "Bags", "price": bad_price, "prediction": parse_answer("")}])


def test_score_predictions_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        score_predictions([])


def test_build_records():
    predictions = [parse_answer("Product: A, Category: Scarves, Full Price: 1"), parse_answer("")]
    records = build_records(TEST_ROWS, predictions)
    assert records[1] == {"title": "Tote Bag", "category": "Bags", "price": 1000.0, "prediction": predictions[1]}
    with pytest.raises(ValueError):
        build_records(TEST_ROWS, predictions[:1])


def test_median_baselines():
    assert global_median_price(row["full_price"] for row in TRAIN_ROWS) == 250.0
    assert global_median_price([3.0, 1.0, 2.0]) == 2.0
    assert category_median_prices(TRAIN_ROWS) == {"Scarves": 150.0, "Coats": 300.0, "N.A.": 1000.0}
    with pytest.raises(ValueError):
        global_median_price([])

    assert global_median_predictions(TRAIN_ROWS, TEST_ROWS) == [ParsedAnswer(None, None, 250.0)] * 2
    # "Bags" is not in the training split: the global median stands in.
    assert true_category_median_predictions(TRAIN_ROWS, TEST_ROWS) == [
        ParsedAnswer(None, "Scarves", 150.0),
        ParsedAnswer(None, "Bags", 250.0),
    ]


def test_baselines_are_scored_like_models():
    metrics = score_predictions(build_records(TEST_ROWS, true_category_median_predictions(TRAIN_ROWS, TEST_ROWS)))
    assert metrics["parse_rate"] == metrics["title_exact_match"] == 0.0
    assert metrics["category_accuracy"] == metrics["price_coverage"] == 1.0
    assert metrics["price_mae"] == pytest.approx((0 + 750) / 2)
    assert metrics["price_mape"] == pytest.approx((0 + 0.75) / 2)
    assert metrics["price_within_10pct"] == 0.5


def test_format_report_table():
    table = format_report_table(
        {
            "sft": {"num_samples": 1200, "parse_rate": 0.875, "price_mae": 1234.5, "title_anls": 0.91666},
            "median": {"num_samples": 1200, "parse_rate": 0.0, "price_mae": 80.0, "price_mape_parsed": None},
        }
    )
    assert table == (
        "| metric            |       sft | median |\n"
        "| :---------------- | --------: | -----: |\n"
        "| num_samples       |     1,200 |  1,200 |\n"
        "| parse_rate        |     87.5% |   0.0% |\n"
        "| price_mae         | $1,234.50 | $80.00 |\n"
        "| title_anls        |     0.917 |    n/a |\n"
        "| price_mape_parsed |       n/a |    n/a |\n"
    )


def test_write_report_with_several_models(tmp_path):
    metrics_by_model = {
        "sft": score_predictions(hand_computed_records()),
        "dpo": score_predictions(hand_computed_records()[:2]),
        "global median": score_predictions(build_records(TEST_ROWS, global_median_predictions(TRAIN_ROWS, TEST_ROWS))),
    }
    plot_path = tmp_path / "plots" / "sft_prices.png"
    plot_price_scatter(plot_path, [500.0, 2000.0], [550.0, 1500.0], "sft")
    report_path = write_report(
        tmp_path / "eval", metrics_by_model, title="SFT vs DPO", notes="Test split: 4 rows.", plots=[plot_path]
    )

    report = report_path.read_text(encoding="utf-8")
    assert report_path == tmp_path / "eval" / "report.md"
    assert report.startswith("# SFT vs DPO\n\nTest split: 4 rows.\n")
    assert format_report_table(metrics_by_model) in report
    assert "| metric             |     sft |     dpo | global median |\n" in report
    assert "| price_mape " in report and " 52.5% " in report and " $462.50 " in report
    assert "![sft_prices](../plots/sft_prices.png)" in report


def test_write_predictions_and_metrics_json(tmp_path):
    records = build_records(
        TEST_ROWS, [parse_answer("Product: Écharpe, Category: Scarves, Full Price: 5"), parse_answer("")]
    )
    records[0]["generated_text"] = "Product: Écharpe, Category: Scarves, Full Price: 5"
    write_predictions_jsonl(tmp_path / "out" / "predictions.jsonl", records)
    lines = (tmp_path / "out" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["prediction"] == {
        "title": "Écharpe",
        "category": "Scarves",
        "price": 5.0,
        "parsed": True,
    }
    assert json.loads(lines[1])["prediction"] == {"title": None, "category": None, "price": None, "parsed": False}
    assert "Écharpe" in lines[0]

    metrics = {"sft": {"num_samples": 2, "price_mape_parsed": None, "price_mae": 1.5}}
    write_metrics_json(tmp_path / "out" / "metrics.json", metrics)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8")) == metrics


@pytest.mark.parametrize(
    "predicted_prices",
    [[550.0, 1500.0, 30.0], [550.0, None, 0.0], [None, None, None]],
    ids=["all", "some-missing", "none"],
)
def test_plot_price_scatter_writes_a_png(tmp_path, predicted_prices):
    path = tmp_path / "scatter.png"
    plot_price_scatter(path, [500.0, 2000.0, 35.0], predicted_prices, "sft")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (720, 720)


def test_plot_price_scatter_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError):
        plot_price_scatter(tmp_path / "scatter.png", [1.0, 2.0], [1.0], "sft")
