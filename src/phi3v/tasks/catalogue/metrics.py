"""Catalogue metrics and the image-free baselines a fine-tuned model has to beat.

Each field of the answer template is scored on its own:

- `title`: exact match and ANLS; `category3_code`: accuracy; any other text column `c`: `c_exact_match`. Text is
  compared casefolded with whitespace collapsed; a missing value is wrong.
- `full_price`: a missing price counts as a prediction of $0 in every headline price metric, so it cannot silently
  vanish from them (100% error, never within a tolerance); `price_coverage` says how often a price was read and
  `price_mape_parsed` is the MAPE over those answers only. The log error is of log(1 + price).
- `parse_rate`: answers in which every field of the template was read.

A baseline predicts only some fields (a price; the true category): the metrics of what it does not predict are `None`,
shown as "n/a", never as a 0% that would look like a result.
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from phi3v.text_metrics import normalise_text, normalised_edit_similarity

from .answers import PRICE_FIELD


GLOBAL_MEDIAN = "global median"
CATEGORY_MEDIAN = "true-category median"
CATEGORY_FIELD = "category3_code"
PRICE_METRICS = (
    "price_coverage",
    "price_mae",
    "price_mape",
    "price_median_ape",
    "price_within_10pct",
    "price_within_25pct",
    "price_rmse_log",
    "price_mape_parsed",
)


def text_metric_names(field: str) -> list[str]:
    """The metrics of a text column: `title` -> exact match and ANLS, `category3_code` -> accuracy."""
    if field == "title":
        return ["title_exact_match", "title_anls"]
    if field == CATEGORY_FIELD:
        return ["category_accuracy"]
    return [f"{field}_exact_match"]


def same_text(predicted: str | None, true) -> bool:
    """Whether a read value equals the truth, casefolded with whitespace collapsed (`None` is never equal)."""
    return predicted is not None and normalise_text(predicted) == normalise_text(str(true))


def score_catalogue(
    rows: Sequence[Mapping], predictions: Sequence[Mapping], fields: Sequence[str], predicted_fields=None
) -> dict[str, float | int | None]:
    """All metrics of one model or baseline; see the module docstring.

    Args:
        rows (`Sequence[Mapping]`): the evaluated rows, with the template's columns (the truth).
        predictions (`Sequence[Mapping]`): one `{column: value}` per row, e.g. from `AnswerTemplate.parse`.
        fields (`Sequence[str]`): the template's columns, in order.
        predicted_fields (`Sequence[str]`, *optional*): the columns this system predicts at all (a baseline's
            subset); the others score `None`. Defaults to all of `fields`.
    """
    if not rows or len(rows) != len(predictions):
        raise ValueError(f"Got {len(rows)} rows and {len(predictions)} predictions; need as many, and at least one.")
    predicted_fields = list(fields if predicted_fields is None else predicted_fields)
    is_model = set(predicted_fields) == set(fields)
    metrics: dict[str, float | int | None] = {"num_samples": len(rows)}
    metrics["parse_rate"] = (
        float(np.mean([all(p.get(f) is not None for f in fields) for p in predictions])) if is_model else None
    )
    for field in fields:
        if field == PRICE_FIELD:
            prices = [p.get(PRICE_FIELD) for p in predictions]
            truths = [row[PRICE_FIELD] for row in rows]
            metrics.update(
                price_metrics(truths, prices) if field in predicted_fields else dict.fromkeys(PRICE_METRICS)
            )
            continue
        for name in text_metric_names(field):
            if field not in predicted_fields:
                metrics[name] = None
                continue
            score = normalised_edit_similarity if name.endswith("_anls") else _exact
            metrics[name] = float(
                np.mean(
                    [
                        0.0 if p.get(field) is None else score(p[field], str(r[field]))
                        for r, p in zip(rows, predictions, strict=True)
                    ]
                )
            )
    return metrics


def price_metrics(true_prices: Sequence[float], predicted_prices: Sequence[float | None]) -> dict[str, float | None]:
    """The price metrics; a missing prediction counts as $0 (see the module docstring)."""
    truth = np.array([_true_price(price) for price in true_prices])
    has_price = np.array([price is not None for price in predicted_prices])
    predicted = np.array([0.0 if price is None else price for price in predicted_prices])
    absolute = np.abs(predicted - truth)
    percentage = absolute / truth
    log_errors = np.log1p(predicted) - np.log1p(truth)
    return {
        "price_coverage": float(has_price.mean()),
        "price_mae": float(absolute.mean()),
        "price_mape": float(percentage.mean()),
        "price_median_ape": float(np.median(percentage)),
        "price_within_10pct": float((percentage <= 0.10).mean()),
        "price_within_25pct": float((percentage <= 0.25).mean()),
        "price_rmse_log": float(np.sqrt(np.mean(log_errors**2))),
        "price_mape_parsed": float(percentage[has_price].mean()) if has_price.any() else None,
    }


def answer_errors(row: Mapping, parsed: Mapping, fields: Sequence[str]) -> dict:
    """Per-row errors, counted as `score_catalogue` counts them: `title_exact_match`/`title_anls`,
    `category_correct`, `<column>_correct`, and `price_abs_error`/`price_pct_error` (1.0 when no price was read)."""
    errors = {}
    for field in fields:
        value = parsed.get(field)
        if field == PRICE_FIELD:
            true_price = _true_price(row[PRICE_FIELD])
            predicted = 0.0 if value is None else value
            errors["price_abs_error"] = abs(predicted - true_price)
            errors["price_pct_error"] = abs(predicted - true_price) / true_price
        elif field == "title":
            errors["title_exact_match"] = same_text(value, row[field])
            errors["title_anls"] = 0.0 if value is None else normalised_edit_similarity(value, str(row[field]))
        elif field == CATEGORY_FIELD:
            errors["category_correct"] = same_text(value, row[field])
        else:
            errors[f"{field}_correct"] = same_text(value, row[field])
    return errors


def baseline_metrics(train_rows: Sequence[Mapping], rows: Sequence[Mapping], fields: Sequence[str]) -> dict[str, dict]:
    """Metrics of the image-free baselines: the training split's median price, and the median price of the true
    category (an oracle for how much the category alone tells). Empty when the template asks for no price."""
    if PRICE_FIELD not in fields:
        return {}
    train_prices = [row[PRICE_FIELD] for row in train_rows]
    if not train_prices:
        raise ValueError("Cannot fit the median-price baselines on an empty training split.")
    global_median = float(statistics.median(train_prices))
    by_category = defaultdict(list)
    for row in train_rows:
        by_category[row[CATEGORY_FIELD]].append(row[PRICE_FIELD])
    medians = {category: float(statistics.median(prices)) for category, prices in by_category.items()}
    global_predictions = [{PRICE_FIELD: global_median} for _ in rows]
    category_predictions = [
        {CATEGORY_FIELD: row[CATEGORY_FIELD], PRICE_FIELD: medians.get(row[CATEGORY_FIELD], global_median)}
        for row in rows
    ]
    category_fields = [f for f in (CATEGORY_FIELD, PRICE_FIELD) if f in fields]
    return {
        GLOBAL_MEDIAN: score_catalogue(rows, global_predictions, fields, [PRICE_FIELD]),
        CATEGORY_MEDIAN: score_catalogue(rows, category_predictions, fields, category_fields),
    }


def _exact(predicted: str, truth: str) -> float:
    return float(normalise_text(predicted) == normalise_text(truth))


def _true_price(price) -> float:
    price = float(price)
    # A percentage error needs a positive true price; a zero or missing one means the evaluated data is broken.
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"True prices must be positive and finite, got {price!r}.")
    return price
