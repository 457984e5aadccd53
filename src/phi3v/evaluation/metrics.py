"""Score parsed answers against the truth: title similarity, category accuracy and price errors.

How missing fields count:

- Each field is scored on its own: a readable price is scored even when the title is missing, and so on.
- Text fields are compared after casefolding and collapsing whitespace. A missing title or category is wrong (exact
  match 0, ANLS 0). `N.A.` is an ordinary category value, compared like any other.
- A missing price is scored as a prediction of $0 in every headline price metric, so it cannot silently vanish from
  them: absolute error = the true price, absolute percentage error = 100%, never within a tolerance, log error =
  log(1 + true price). `price_coverage` says how often a price was read, and `price_mape_parsed` is the MAPE over
  those answers only (`None` when there are none), which tells how good the prices are when the model gives one.
- The log error uses log(1 + price) so that a $0 price stays defined; for prices of tens of dollars and up this is
  indistinguishable from log(price).
"""

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from phi3v.evaluation.parsing import ParsedAnswer


def normalise_text(text: str) -> str:
    """Casefold and collapse runs of whitespace, so that `" Check  scarf"` equals `"check Scarf"`.

    Args:
        text (`str`): The text to normalise.

    Returns:
        `str`: The normalised text.
    """
    return " ".join(text.casefold().split())


def levenshtein_distance(a: str, b: str) -> int:
    """The number of single-character insertions, deletions and substitutions that turn `a` into `b`.

    Args:
        a (`str`): The first string.
        b (`str`): The second string.

    Returns:
        `int`: The edit distance.
    """
    if len(a) < len(b):
        a, b = b, a
    previous_row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current_row = [i]
        for j, char_b in enumerate(b, start=1):
            current_row.append(
                min(previous_row[j] + 1, current_row[j - 1] + 1, previous_row[j - 1] + (char_a != char_b))
            )
        previous_row = current_row
    return previous_row[-1]


def normalised_edit_similarity(a: str, b: str, threshold: float = 0.5) -> float:
    """ANLS-style similarity: 1 - Levenshtein / longer length, on normalised strings, zeroed when too dissimilar.

    Args:
        a (`str`): The prediction.
        b (`str`): The reference.
        threshold (`float`, *optional*, defaults to 0.5):
            A normalised distance at or above this scores 0, as in ANLS, so that a wrong answer earns no partial
            credit. `1.0` gives the plain similarity.

    Returns:
        `float`: A score in [0, 1]; 1 when the normalised strings are equal (two empty strings included).
    """
    a, b = normalise_text(a), normalise_text(b)
    longer = max(len(a), len(b))
    if longer == 0:
        return 1.0
    distance = levenshtein_distance(a, b) / longer
    return 1.0 - distance if distance < threshold else 0.0


def build_records(test_rows: Iterable[Mapping], predictions: Iterable[ParsedAnswer]) -> list[dict]:
    """Pair dataset rows with predictions into the records that `score_predictions` takes.

    Args:
        test_rows (`Iterable[Mapping]`): Rows in the dataset schema, with `title`, `category3_code` and `full_price`.
        predictions (`Iterable[ParsedAnswer]`): One prediction per row, in the same order.

    Returns:
        `list[dict]`: Records with keys `title`, `category`, `price` (the truth) and `prediction`.
    """
    test_rows, predictions = list(test_rows), list(predictions)
    if len(test_rows) != len(predictions):
        raise ValueError(f"Got {len(test_rows)} rows but {len(predictions)} predictions.")
    return [
        {
            "title": row["title"],
            "category": row["category3_code"],
            "price": row["full_price"],
            "prediction": prediction,
        }
        for row, prediction in zip(test_rows, predictions, strict=True)
    ]


def score_predictions(records: Sequence[Mapping]) -> dict[str, float | int | None]:
    """Compute all metrics for one model or baseline; see the module docstring for how missing fields count.

    Args:
        records (`Sequence[Mapping]`):
            One record per test sample with keys `title` (`str`), `category` (`str`), `price` (`float`, the true full
            price, > 0) and `prediction` (`ParsedAnswer`), e.g. from `build_records`.

    Returns:
        `dict`: `num_samples`, `parse_rate`, `title_exact_match`, `title_anls`, `category_accuracy`,
        `price_coverage`, `price_mae`, `price_mape`, `price_median_ape`, `price_within_10pct`, `price_within_25pct`,
        `price_rmse_log` (all over every sample, missing price = $0) and `price_mape_parsed` (over read prices only).
        Rates and percentage errors are fractions (0.25 = 25%); `price_mae` is in the dataset's currency.
    """
    if not records:
        raise ValueError("Cannot score an empty list of predictions.")
    true_prices = np.array([_true_price(record) for record in records])
    predictions: list[ParsedAnswer] = [record["prediction"] for record in records]
    has_price = np.array([prediction.price is not None for prediction in predictions])
    predicted_prices = np.array([0.0 if prediction.price is None else prediction.price for prediction in predictions])

    absolute_errors = np.abs(predicted_prices - true_prices)
    percentage_errors = absolute_errors / true_prices
    log_errors = np.log1p(predicted_prices) - np.log1p(true_prices)
    return {
        "num_samples": len(records),
        "parse_rate": float(np.mean([prediction.parsed for prediction in predictions])),
        "title_exact_match": _mean_text_score(records, "title", _exact_match),
        "title_anls": _mean_text_score(records, "title", normalised_edit_similarity),
        "category_accuracy": _mean_text_score(records, "category", _exact_match),
        "price_coverage": float(has_price.mean()),
        "price_mae": float(absolute_errors.mean()),
        "price_mape": float(percentage_errors.mean()),
        "price_median_ape": float(np.median(percentage_errors)),
        # A missing price has a percentage error of exactly 1, so it is never within a tolerance below 100%.
        "price_within_10pct": float((percentage_errors <= 0.10).mean()),
        "price_within_25pct": float((percentage_errors <= 0.25).mean()),
        "price_rmse_log": float(np.sqrt(np.mean(log_errors**2))),
        "price_mape_parsed": float(percentage_errors[has_price].mean()) if has_price.any() else None,
    }


def _true_price(record: Mapping) -> float:
    price = float(record["price"])
    # A percentage error needs a positive true price; a zero or missing one means the test data is broken.
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"True prices must be positive and finite, got {record['price']!r} for {record['title']!r}.")
    return price


def _exact_match(prediction: str, truth: str) -> float:
    return float(normalise_text(prediction) == normalise_text(truth))


def _mean_text_score(records: Sequence[Mapping], field_name: str, score: Callable[[str, str], float]) -> float:
    scores = []
    for record in records:
        predicted = getattr(record["prediction"], field_name)
        scores.append(0.0 if predicted is None else score(predicted, record[field_name]))
    return float(np.mean(scores))
