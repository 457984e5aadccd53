"""The catalogue as a [`Task`]: the product question about a photo, answers read with the answer template and scored
per field (`metrics`), median-price baselines, and per-field rewards for RL."""

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import datasets

from phi3v.data.conversation import as_conversation
from phi3v.data.image_columns import undecoded
from phi3v.errors import BadRow, DataError
from phi3v.text_metrics import normalised_edit_similarity

from ..base import Task, check_answers
from ..config import TaskConfig
from .answers import PRICE_FIELD, AnswerTemplate, format_price
from .answers import to_conversation as to_conversation_of
from .metrics import CATEGORY_FIELD, answer_errors, baseline_metrics, same_text, score_catalogue


CATALOGUE_METRICS_EXPLAINED = """\
Rates and percentage errors are over all test samples. Text fields are compared casefolded with whitespace collapsed;
a missing value counts as wrong. A missing price counts as a prediction of $0 (100% error, never within a tolerance),
so `price_coverage` says how often a price was read and `price_mape_parsed` is the MAPE over those answers only.
`title_anls` is 1 - normalised Levenshtein distance, 0 when the distance is 0.5 or more. `price_rmse_log` is the RMSE
of log(1 + price). Baselines predict a price only: "n/a" marks what they do not predict (the true-category median is
given the category, so its category accuracy is 100% by construction).
"""


class CatalogueTask(Task):
    r"""
    From a product photo, the answer template's fields (by default `Product: {title}, Category: {category3_code},
    Full Price: {full_price}`).

    Items of a catalogue-layout row carry its `truth` (the row's text columns); items of any other layout (a catalogue
    exported to conversations, preference pairs) are scored against their reference read back with the template.

    Args:
        config ([`TaskConfig`]): its `question` and `answer_template` are the catalogue's.
    """

    fixed_question = True
    metrics_explained = CATALOGUE_METRICS_EXPLAINED

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.template = AnswerTemplate(config.answer_template)
        self.answer_fields = tuple(self.template.fields)
        self.table_columns = ("price_error",) if PRICE_FIELD in self.template.fields else ()

    def check_training_rows(self, rows, layout: str, dataset_name: str) -> None:
        """Catalogue rows must hold decoded images (not a raw table of URLs), and the answer template must read back
        what it renders from them (`AnswerTemplate.check_round_trip`).

        Raises:
            `DataError`: naming the dataset and what to do, or the row the template cannot read back.
        """
        if layout != "catalogue":
            return
        if not isinstance(rows.features.get("image"), datasets.Image):
            raise DataError(
                f"{dataset_name} is a catalogue whose `image` column holds {rows.features.get('image')}, not images: "
                "prepare it first with `python scripts/prepare_dataset.py --source ... --output_dir ...` (fetches and "
                "checks every image)."
            )
        self.template.check_round_trip(undecoded(rows).remove_columns("image"))

    def eval_items(
        self,
        rows: Iterable[Mapping],
        layout: str,
        to_conversation: Callable[[Mapping], Mapping] | None,
        skip_rows: Collection[int] = (),
    ) -> list[dict]:
        if layout != "catalogue":
            return super().eval_items(rows, layout, to_conversation, skip_rows)
        items = []
        for index, row in enumerate(rows):
            if index in skip_rows:
                continue
            # The conversation training reads (checked as it is: `as_conversation`), asked up to its answer.
            conversation = as_conversation(to_conversation_of(row, self.question, self.template))
            prompt, reference = conversation.eval_split()
            items.append(
                {
                    "id": str(row.get("product_code", index)),
                    "images": conversation.images,
                    "prompt": prompt,
                    "references": [reference],
                    "truth": {column: value for column, value in row.items() if column != "image"},
                }
            )
        return items

    def parse(self, answer: str) -> dict:
        return self.template.parse(answer)

    def truth(self, item: Mapping) -> Mapping:
        """The true fields of an item: its catalogue row, else its reference read with the template."""
        return item["truth"] if "truth" in item else self.template.parse(item["references"][0])

    def item_scores(self, answer: str, item: Mapping) -> dict[str, float]:
        return answer_errors(self.truth(item), self.parse(answer), self.answer_fields)

    def metrics(self, items: Sequence[Mapping], answers: Sequence[str]) -> dict[str, float | int | None]:
        """`score_catalogue`'s metrics (`phi3v.tasks.catalogue.metrics`)."""
        check_answers(items, answers)
        truths = [self.truth(item) for item in items]
        return score_catalogue(truths, [self.parse(answer) for answer in answers], self.answer_fields)

    def rewards(self, answer: str, item: Mapping) -> dict[str, float]:
        """Per field of the template, in [0, 1]: `format` (every field read), `price` (1 at the true price, falling
        linearly in |log(predicted / true)| to 0 at a factor of 2), `category` (exact), `title` and any other text
        field (edit similarity)."""
        parsed, truth = self.parse(answer), self.truth(item)
        rewards = {"format": float(None not in parsed.values())}
        for field in self.answer_fields:
            value = parsed[field]
            if field == PRICE_FIELD:
                true_price = float(truth[PRICE_FIELD])
                ratio = abs(math.log(value / true_price)) if value else math.inf
                rewards["price"] = max(0.0, 1.0 - ratio / math.log(2))
            elif field == CATEGORY_FIELD:
                rewards["category"] = float(same_text(value, truth[field]))
            else:
                rewards[field] = 0.0 if value is None else normalised_edit_similarity(value, str(truth[field]), 1.0)
        return rewards

    def table_cells(self, item: Mapping, answer: str) -> list:
        if not self.table_columns:
            return []
        predicted = self.parse(answer)[PRICE_FIELD]
        return [None if predicted is None else abs(predicted - float(self.truth(item)[PRICE_FIELD]))]

    def item_record(self, item: Mapping) -> dict:
        truth = self.truth(item)
        return {
            "id": item["id"],
            "truth": {field: truth[field] for field in self.answer_fields},
            "references": list(item["references"]),
        }

    def answer_record(self, item: Mapping, answer: str) -> dict:
        parsed = self.parse(answer)
        return {
            "answer": answer,
            "parsed": parsed,
            "errors": answer_errors(self.truth(item), parsed, self.answer_fields),
        }

    def price_points(self, items: Sequence[Mapping], answers: Sequence[str]) -> tuple[list, list] | None:
        if PRICE_FIELD not in self.answer_fields:
            return None
        return [self.truth(item)[PRICE_FIELD] for item in items], [self.parse(a)[PRICE_FIELD] for a in answers]

    def baselines(
        self, items: Sequence[Mapping], load_train_split: Callable[[], object], train_split: str
    ) -> tuple[dict[str, dict], list[str]]:
        """The median-price baselines, fitted on the training split, when the items are catalogue rows."""
        if not all("truth" in item for item in items):
            return {}, []
        rows = load_train_split().remove_columns("image").to_list()
        train_rows = [row for row in rows if self._usable(row)]  # a row whose answer cannot be rendered fits nothing
        baselines = baseline_metrics(train_rows, [item["truth"] for item in items], self.answer_fields)
        note = f"Answer template `{self.template.template}`; baselines fitted on split `{train_split}`."
        if len(train_rows) < len(rows):
            note += f" {len(rows) - len(train_rows)} of its {len(rows)} rows lack a usable answer and are left out."
        return baselines, [note]

    def _usable(self, row: Mapping) -> bool:
        try:
            self.template.check_row(row)
        except BadRow:
            return False
        return True

    def format_field(self, value) -> str:
        return format_price(value) if isinstance(value, float) else str(value)
