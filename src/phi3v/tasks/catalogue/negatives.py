"""Catalogue preference pairs for DPO: the true answer is chosen; the rejected one is the SFT model's own mistake or a hard
negative made from the truth (a price off by a sampled percentage, a wrong category of the same department, the title
of a similar product).

Rows keep TRL's conversational preference format (`images`, `prompt`, `chosen`, `rejected`), plus `kind` (where the
rejected answer came from, so a manifest can count the pairs of each kind) and `product_code`. The answers follow the
recipe's answer template, and so does `is_correct`, which parses them with it.
"""

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

from .answers import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION, PRICE_FIELD, AnswerTemplate, to_conversation
from .metrics import same_text


HARD_NEGATIVE_KINDS = ("price", "category", "title")
ON_POLICY = "on_policy"


class HardNegatives:
    """Makes plausible wrong answers from a row's truth, using the other rows of the split as the pool.

    Args:
        rows (`Sequence[Mapping]`): the catalogue rows (`title`, `category2_code`, `category3_code`, `full_price`).
        answer_template ([`AnswerTemplate`], *optional*): how answers are written; defaults to the default template.
        price_offset_range (`tuple[float, float]`, *optional*, defaults to `(0.1, 0.4)`): the relative price error is
            drawn uniformly from this range, up or down.
        seed (`int`, *optional*, defaults to 0): seed of the draws.
    """

    def __init__(
        self,
        rows: Sequence[Mapping],
        answer_template: AnswerTemplate | None = None,
        price_offset_range: tuple[float, float] = (0.1, 0.4),
        seed: int = 0,
    ):
        low, high = price_offset_range
        if not 0 < low <= high < 1:
            raise ValueError(f"price_offset_range must satisfy 0 < low <= high < 1, got {price_offset_range}")
        self.answer_template = answer_template or AnswerTemplate(DEFAULT_ANSWER_TEMPLATE)
        self.price_offset_range = price_offset_range
        self.rng = random.Random(seed)
        self.categories_by_department = defaultdict(set)
        self.titles_by_category = defaultdict(set)
        for row in rows:
            self.categories_by_department[row["category2_code"]].add(row["category3_code"])
            self.titles_by_category[row["category3_code"]].add(row["title"])
        self.all_categories = sorted(set().union(*self.categories_by_department.values()))
        self.all_titles = sorted(set().union(*self.titles_by_category.values()))

    def make(self, row: Mapping, kind: str) -> str:
        """A wrong answer of `kind` (`price`, `category` or `title`) for `row`, differing from the truth only there."""
        wrong = dict(row)
        if kind == "price":
            offset = self.rng.uniform(*self.price_offset_range) * self.rng.choice((-1, 1))
            # Whole dollars, as catalogue prices are; never equal to the truth.
            wrong["full_price"] = max(1.0, float(round(row["full_price"] * (1 + offset))))
            if wrong["full_price"] == row["full_price"]:
                wrong["full_price"] += 1.0
        elif kind == "category":
            wrong["category3_code"] = self._other(
                row["category3_code"], self.categories_by_department[row["category2_code"]], self.all_categories
            )
        elif kind == "title":
            wrong["title"] = self._other(row["title"], self.titles_by_category[row["category3_code"]], self.all_titles)
        else:
            raise ValueError(f"Unknown hard-negative kind {kind!r}; choose from {HARD_NEGATIVE_KINDS}")
        return self.answer_template.render(wrong)

    def _other(self, truth: str, near: set[str], everything: list[str]) -> str:
        """A value from `near` (same department or category) other than `truth`, else from `everything`."""
        candidates = sorted(near - {truth}) or [value for value in everything if value != truth]
        if not candidates:
            raise ValueError(f"No value other than {truth!r} exists to make a hard negative from")
        return self.rng.choice(candidates)


# The column each hard-negative kind changes; a kind whose column the template does not show cannot make a wrong answer.
KIND_FIELDS = {"price": PRICE_FIELD, "category": "category3_code", "title": "title"}


def is_correct(answer: str, row: Mapping, template: AnswerTemplate) -> bool:
    """Whether a generated answer states every field of the row that the template shows (after parsing, so spacing
    and formatting differences do not count as mistakes)."""
    parsed = template.parse(answer)
    for field in template.fields:
        value = parsed[field]
        if field == PRICE_FIELD:
            if value is None or abs(value - float(row[field])) >= 0.005:
                return False
        elif not same_text(value, row[field]):
            return False
    return True


def preference_pair(
    row: Mapping, rejected: str, kind: str, question: str = DEFAULT_QUESTION, template: AnswerTemplate | None = None
) -> dict:
    """One pair in TRL's conversational preference format (`images`, `prompt`, `chosen`, `rejected`), with its `kind`
    and `product_code`."""
    conversation = to_conversation(row, question, template)
    prompt, chosen = conversation["messages"]
    return {
        "images": conversation["images"],
        "prompt": [prompt],
        "chosen": [chosen],
        "rejected": [{"role": "assistant", "content": rejected}],
        "kind": kind,
        "product_code": str(row["product_code"]),
    }


def build_preference_pairs(
    rows: Sequence[Mapping],
    hard_negatives: HardNegatives,
    generated: Sequence[str] | None = None,
    kinds: Sequence[str] = HARD_NEGATIVE_KINDS,
    question: str = DEFAULT_QUESTION,
) -> list[dict]:
    """One pair per row. With `generated` (the SFT model's answers, in row order), a wrong answer is the rejected
    one (`kind="on_policy"`); a right answer, or no model, falls back to a hard negative of a kind drawn from `kinds`.

    Args:
        rows (`Sequence[Mapping]`): catalogue rows with their images.
        hard_negatives ([`HardNegatives`]): the hard-negative maker (its template renders the chosen answers too).
        generated (`Sequence[str]`, *optional*): the SFT model's greedy answers, one per row.
        kinds (`Sequence[str]`, *optional*, defaults to `("price", "category", "title")`): hard-negative kinds; only
            those whose column the template shows are drawn.
        question (`str`, *optional*, defaults to `DEFAULT_QUESTION`): the user's question.

    Raises:
        `ValueError`: when no kind changes a column that the template shows.
    """
    if generated is not None and len(generated) != len(rows):
        raise ValueError(f"Got {len(generated)} generated answers for {len(rows)} rows")
    template = hard_negatives.answer_template
    usable = [kind for kind in kinds if KIND_FIELDS[kind] in template.fields]
    if not usable:
        raise ValueError(
            f"None of the hard-negative kinds {list(kinds)} changes a column of answer_template {template.template!r} "
            f"(price: {{full_price}}, category: {{category3_code}}, title: {{title}})."
        )
    pairs = []
    for index, row in enumerate(rows):
        answer = None if generated is None else generated[index]
        # An empty answer is no mistake to learn from (the pair would reject nothing): a hard negative replaces it.
        wrong = answer is not None and answer.strip() and not is_correct(answer, row, template)
        if wrong and answer.strip() != template.render(row):
            pairs.append(preference_pair(row, answer, ON_POLICY, question, template))
        else:
            kind = hard_negatives.rng.choice(usable)
            pairs.append(preference_pair(row, hard_negatives.make(row, kind), kind, question, template))
    return pairs
