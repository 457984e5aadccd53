"""Image-free baselines that a fine-tuned model has to beat: median prices learned from the training split.

Their predictions are `ParsedAnswer`s like the model's, so `build_records` and `score_predictions` score them the same
way. A field a baseline does not predict is `None`; `results.baseline_metrics` reports the metrics of those fields as
`None` (`n/a` in the report), since a baseline cannot be right or wrong about what it does not predict.
"""

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from phi3v.evaluation.parsing import ParsedAnswer


def global_median_price(train_prices: Iterable[float]) -> float:
    """The median full price of the training split.

    Args:
        train_prices (`Iterable[float]`): The training prices.

    Returns:
        `float`: Their median.
    """
    train_prices = list(train_prices)
    if not train_prices:
        raise ValueError("Cannot take the median of no training prices.")
    return float(statistics.median(train_prices))


def category_median_prices(train_rows: Iterable[Mapping]) -> dict[str, float]:
    """The median full price of each category3 value in the training split (`N.A.` included, as its own category).

    Args:
        train_rows (`Iterable[Mapping]`): Rows with `category3_code` and `full_price`.

    Returns:
        `dict[str, float]`: Category -> median price.
    """
    prices_by_category: dict[str, list[float]] = defaultdict(list)
    for row in train_rows:
        prices_by_category[row["category3_code"]].append(row["full_price"])
    return {category: float(statistics.median(prices)) for category, prices in prices_by_category.items()}


def global_median_predictions(train_rows: Sequence[Mapping], test_rows: Sequence[Mapping]) -> list[ParsedAnswer]:
    """Predict the training median price for every test row, with no title and no category.

    Args:
        train_rows (`Sequence[Mapping]`): Training rows with `full_price`.
        test_rows (`Sequence[Mapping]`): The rows to predict.

    Returns:
        `list[ParsedAnswer]`: One prediction per test row.
    """
    median = global_median_price(row["full_price"] for row in train_rows)
    return [ParsedAnswer(title=None, category=None, price=median) for _ in test_rows]


def true_category_median_predictions(
    train_rows: Sequence[Mapping], test_rows: Sequence[Mapping]
) -> list[ParsedAnswer]:
    """Given the true category, predict its training median price; an oracle for how much the category alone tells.

    Categories absent from the training split fall back to the global training median. The title is not predicted.

    Args:
        train_rows (`Sequence[Mapping]`): Training rows with `category3_code` and `full_price`.
        test_rows (`Sequence[Mapping]`): The rows to predict, with `category3_code`.

    Returns:
        `list[ParsedAnswer]`: One prediction per test row, with the true category.
    """
    global_median = global_median_price(row["full_price"] for row in train_rows)
    medians = category_median_prices(train_rows)
    return [
        ParsedAnswer(
            title=None,
            category=row["category3_code"],
            price=medians.get(row["category3_code"], global_median),
        )
        for row in test_rows
    ]
