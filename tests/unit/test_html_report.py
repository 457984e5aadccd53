"""`report.html`: metrics as in report.md, embedded plots, a gallery of thumbnails with truth and answers, worst first;
and the page as Chromium shows it."""

import base64
import io
import json
import re

import datasets
import pytest
from PIL import Image

from phi3v.evaluation.html_report import read_predictions_jsonl, write_html_report
from phi3v.evaluation.report import format_metric
from phi3v.evaluation.results import write_results
from phi3v.tasks import build_task
from phi3v.tasks.catalogue import DEFAULT_ANSWER_TEMPLATE, AnswerTemplate
from phi3v.tasks.catalogue.metrics import CATEGORY_MEDIAN, GLOBAL_MEDIAN, baseline_metrics
from phi3v.tasks.config import TaskConfig


MARKUP = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def evaluation(synthetic_catalogue, tmp_path_factory):
    """A catalogue evaluation of made-up answers: `sft` is off by 0%, 10%, 20%, ... in price (so the last product is
    its worst), and its blank-image control always answers the same wallet."""
    catalogue = datasets.load_from_disk(str(synthetic_catalogue))
    split = catalogue["test"]
    rows = split.remove_columns("image").to_list()
    answers = {
        "sft": [
            f"Product: {row['title']}, Category: {row['category3_code']}, Full Price: {row['full_price'] * (1 + index / 10):,.2f}"
            for index, row in enumerate(rows)
        ],
        "sft (grey image)": ["Product: Black Plain Wallet, Category: N.A., Full Price: 450.00"] * len(rows),
    }
    output_dir = tmp_path_factory.mktemp("evaluation")
    template = AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)
    baselines = baseline_metrics(catalogue["train"].remove_columns("image").to_list(), rows, template.fields)
    notes = "Split `test` of <synthetic>.\n\n- `sft`: `outputs/demo`"
    task = build_task(TaskConfig(task="catalogue"))
    items = [{"id": row["product_code"], "references": [template.render(row)], "truth": row} for row in rows]
    metrics = write_results(output_dir, task, items, answers, baselines, notes=notes)
    lines = read_predictions_jsonl(output_dir / "predictions.jsonl")
    return output_dir, metrics, lines, [[image] for image in split["image"]], rows


def card_names(page_html: str) -> list[str]:
    return re.findall(r'<div class="card"><img alt="([^"]*)"', page_html)


def thumbnails(page_html: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(data)))
        for data in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page_html)
    ]


def test_gallery_is_worst_first_capped_and_light(evaluation):
    output_dir, metrics, lines, images, rows = evaluation
    path = write_html_report(output_dir, metrics, lines, images, notes="notes", gallery_size=4, thumbnail_size=64)
    page_html = path.read_text()
    codes = [row["product_code"] for row in rows]
    assert card_names(page_html) == codes[::-1][:4]  # price error grows along the split
    assert "4 of 6 products, largest price error of sft first" in page_html
    sizes = [thumbnail.size for thumbnail in thumbnails(page_html)]
    assert len(sizes) == 4 and all(max(size) == 64 for size in sizes)
    # The plots written by write_results, embedded.
    assert page_html.count('src="data:image/png;base64,') == 2


def test_metrics_table_reads_as_report_md_and_baselines_say_na(evaluation):
    output_dir, metrics, lines, images, _ = evaluation
    page_html = write_html_report(output_dir, metrics, lines, images).read_text()
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", page_html).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == [
        "metric",
        "sft",
        "sft (grey image)",
        GLOBAL_MEDIAN,
        CATEGORY_MEDIAN,
    ]
    for metric in ["parse_rate", "price_mape"]:
        row = re.search(rf"<tr><td>{metric}</td>(.*?)</tr>", page_html).group(1)
        assert re.findall(r"<td>(.*?)</td>", row) == [format_metric(metric, m[metric]) for m in metrics.values()]
    for baseline in [GLOBAL_MEDIAN, CATEGORY_MEDIAN]:
        assert {name: metrics[baseline][name] for name in ["parse_rate", "title_anls"]} == {
            "parse_rate": None,
            "title_anls": None,
        }
        assert metrics[baseline]["price_mape"] is not None
    assert metrics[GLOBAL_MEDIAN]["category_accuracy"] is None and metrics[CATEGORY_MEDIAN]["category_accuracy"] == 1.0
    assert (
        "| parse_rate " in (output_dir / "report.md").read_text() and "n/a" in (output_dir / "report.md").read_text()
    )
    assert json.loads((output_dir / "metrics.json").read_text())[GLOBAL_MEDIAN]["category_accuracy"] is None


def test_all_text_is_escaped(evaluation, tmp_path):
    _, metrics, lines, images, _ = evaluation
    lines = json.loads(json.dumps(lines))
    lines[0]["predictions"]["sft"]["answer"] = f"Product: {MARKUP}"
    output_dir = tmp_path
    page_html = write_html_report(output_dir, metrics, lines, images, title="<i>Report</i>").read_text()
    assert MARKUP not in page_html and "<i>" not in page_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_html
    with_notes = write_html_report(
        output_dir, metrics, lines, images, notes="Split `test` of <synthetic>."
    ).read_text()
    assert "Split <code>test</code> of &lt;synthetic&gt;." in with_notes


def test_generic_lines_rank_by_their_first_score(tmp_path):
    lines = [
        {
            "id": f"q{index}",
            "prompt": "What colour is <this>?",
            "references": [f"colour {index}"],
            "predictions": {"model": {"answer": f"answer {index}", "scores": {"anls": score, "exact_match": 0.0}}},
        }
        for index, score in enumerate([0.5, None, 0.1, 0.9])
    ]
    images = [[Image.new("RGB", (40, 30), (index * 60, 0, 0))] for index in range(4)]
    metrics = {"model": {"num_samples": 4, "anls": 0.5}}
    page_html = write_html_report(tmp_path, metrics, lines, images).read_text()
    assert card_names(page_html) == ["q2", "q0", "q3", "q1"]  # lowest anls first, undefined last
    assert "lowest anls of model first" in page_html
    assert "What colour is &lt;this&gt;?" in page_html and "colour 3" in page_html
    assert "anls n/a · exact_match 0.000" in page_html
    assert [thumbnail.size for thumbnail in thumbnails(page_html)] == [(40, 30)] * 4  # never enlarged


def test_refuses_images_that_do_not_match_the_lines(evaluation, tmp_path):
    _, metrics, lines, images, _ = evaluation
    with pytest.raises(ValueError, match="6 prediction lines but 5 images"):
        write_html_report(tmp_path, metrics, lines, images[:5])
