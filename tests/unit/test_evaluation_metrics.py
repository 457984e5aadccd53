import json
import math

import pytest
from PIL import Image

from phi3v.evaluation.report import (
    format_report_table,
    plot_price_scatter,
    write_metrics_json,
    write_predictions_jsonl,
    write_report,
)
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate
from phi3v.tasks.catalogue.metrics import CATEGORY_MEDIAN, GLOBAL_MEDIAN, baseline_metrics, score_catalogue
from phi3v.text_metrics import answer_scores, levenshtein_distance, normalise_answer, normalised_edit_similarity


FIELDS = ["title", "category3_code", "full_price"]
parse_answer = AnswerTemplate(DEFAULT_ANSWER_TEMPLATE).parse


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


def prediction(title, category, price):
    return {"title": title, "category3_code": category, "full_price": price}


HAND_ROWS = [
    {"title": "Check Cashmere Scarf", "category3_code": "Scarves", "full_price": 500.0},
    {"title": "Trench Coat", "category3_code": "Coats", "full_price": 2000.0},
    {"title": "Bag", "category3_code": "N.A.", "full_price": 1000.0},
    {"title": "Belt", "category3_code": "Belts", "full_price": 400.0},
]
HAND_PREDICTIONS = [
    # Everything right up to case and spacing; price off by exactly 10%.
    prediction("check  cashmere scarf", "Scarves", 550.0),
    # Title one edit away (ANLS 11/12), wrong category, price off by 25%.
    prediction("Trench Coats", "Jackets", 1500.0),
    # No price: scored as $0, i.e. 100% error.
    prediction("Bag", "n.a.", None),
    # Price only: title and category count as wrong.
    prediction(None, None, 100.0),
]


def test_score_catalogue_on_hand_computed_example():
    metrics = score_catalogue(HAND_ROWS, HAND_PREDICTIONS, FIELDS)
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


def test_score_catalogue_perfect_and_all_unparseable():
    truth = {"title": "Check, Wool Scarf", "category3_code": "N.A.", "full_price": 1290.0}
    answer = parse_answer("Product: Check, Wool Scarf, Category: N.A., Full Price: $1,290.00")
    perfect = score_catalogue([truth], [answer], FIELDS)
    assert perfect["parse_rate"] == perfect["title_anls"] == perfect["category_accuracy"] == 1.0
    assert perfect["price_mae"] == perfect["price_mape"] == perfect["price_rmse_log"] == 0.0

    garbage = score_catalogue([truth] * 3, [parse_answer("Check Scarf, 1290")] * 3, FIELDS)
    assert garbage["parse_rate"] == garbage["title_anls"] == garbage["price_coverage"] == 0.0
    assert garbage["price_mape"] == garbage["price_median_ape"] == 1.0
    assert garbage["price_mae"] == 1290.0
    assert garbage["price_rmse_log"] == pytest.approx(math.log(1291.0))
    assert garbage["price_mape_parsed"] is None


def test_a_custom_template_is_scored_on_its_own_fields():
    template = AnswerTemplate("{category2_code} / {title}: ${full_price}")
    rows = [{"title": "Bag", "category2_code": "BAGS", "full_price": 100.0}] * 2
    answers = [template.parse("BAGS / Bag: $100.00"), template.parse("SHOES / Bag: $120")]
    metrics = score_catalogue(rows, answers, template.fields)
    assert metrics["category2_code_exact_match"] == 0.5 and metrics["title_exact_match"] == 1.0
    assert metrics["price_mape"] == pytest.approx(0.1) and metrics["parse_rate"] == 1.0
    assert "category_accuracy" not in metrics


@pytest.mark.parametrize("bad_price", [0.0, -5.0, float("nan"), None])
def test_score_catalogue_rejects_broken_truth(bad_price):
    with pytest.raises((ValueError, TypeError)):
        score_catalogue(
            [{"title": "Bag", "category3_code": "Bags", "full_price": bad_price}], [parse_answer("")], FIELDS
        )


def test_score_catalogue_rejects_empty_and_mismatched():
    with pytest.raises(ValueError, match="at least one"):
        score_catalogue([], [], FIELDS)
    with pytest.raises(ValueError, match="as many"):
        score_catalogue(TEST_ROWS, [parse_answer("")], FIELDS)


def test_median_baselines_show_na_for_what_they_do_not_predict():
    baselines = baseline_metrics(TRAIN_ROWS, TEST_ROWS, FIELDS)
    global_median, category_median = baselines[GLOBAL_MEDIAN], baselines[CATEGORY_MEDIAN]
    # Training median 250; "Bags" is not in the training split, so the global median stands in for it.
    assert global_median["price_mae"] == pytest.approx((100 + 750) / 2)
    assert category_median["price_mae"] == pytest.approx((0 + 750) / 2)
    assert category_median["price_mape"] == pytest.approx((0 + 0.75) / 2)
    assert category_median["price_within_10pct"] == 0.5
    assert category_median["category_accuracy"] == 1.0
    for metrics in (global_median, category_median):
        assert metrics["parse_rate"] is None and metrics["title_exact_match"] is None and metrics["title_anls"] is None
    assert global_median["category_accuracy"] is None
    assert baseline_metrics(TRAIN_ROWS, TEST_ROWS, ["title"]) == {}


@pytest.mark.parametrize(
    ("prediction", "references", "exact", "similarity"),
    [
        (" Yes. ", ["yes"], 1.0, 1.0),
        ("no", ["yes", "No."], 1.0, 1.0),
        ("kitten", ["sitting"], 0.0, 4 / 7),
        ("", ["abc"], 0.0, 0.0),
        ("Red  Circle", ["red circle"], 1.0, 1.0),
    ],
)
def test_answer_scores(prediction, references, exact, similarity):
    assert answer_scores(prediction, references) == pytest.approx(
        {"exact_match": exact, "edit_similarity": similarity}
    )
    assert normalise_answer(" The END... ") == "the end"


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
        "sft": score_catalogue(HAND_ROWS, HAND_PREDICTIONS, FIELDS),
        "dpo": score_catalogue(HAND_ROWS[:2], HAND_PREDICTIONS[:2], FIELDS),
        "global median": baseline_metrics(TRAIN_ROWS, TEST_ROWS, FIELDS)[GLOBAL_MEDIAN],
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
    answers = ["Product: Écharpe, Category: Scarves, Full Price: 5", ""]
    records = [{"answer": answer, "parsed": parse_answer(answer)} for answer in answers]
    write_predictions_jsonl(tmp_path / "out" / "predictions.jsonl", records)
    lines = (tmp_path / "out" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["parsed"] == {"title": "Écharpe", "category3_code": "Scarves", "full_price": 5.0}
    assert json.loads(lines[1])["parsed"] == {"title": None, "category3_code": None, "full_price": None}
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
