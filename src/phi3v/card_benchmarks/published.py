"""The model cards' zero-shot benchmark table, as data: each benchmark's lmms-eval 0.7.3 task and the metric read from
its results, with the numbers Microsoft published for Phi-3-vision-128k-instruct and Phi-3.5-vision-instruct and
lmms-eval's own reproduction of Phi-3-V (EvolvingLMMs-Lab/lmms-eval PR #87). A test holds these numbers against the
team's copy of the cards (`published_results.md`, section 3).

Where lmms-eval's task differs from what the card measured, `note` says how:

- MMBench: the card's number is plain accuracy; lmms-eval's `mmbench_en_dev` matches answers with GPT (73.7 in the
  reproduction), so the static-extraction variant `mmbench_en_dev_static` (no API, 80.5 in the reproduction) is used.
- MathVista: lmms-eval scores it with an LLM judge (`llm_as_judge_eval`), which needs `OPENAI_API_KEY`.
- InterGPS: lmms-eval has Inter-GPS's Geometry3K problems only as `geometry3k`, a 4-choice mixed variant of another
  Hub copy; its number is not the card's InterGPS and carries no tolerance.
- POPE: the cards do not name the metric; LLaVA-1.5's setting, which the Phi-3 report follows, reports F1. lmms-eval's
  F1 counts an answer that is neither "yes" nor "no" as neither positive nor negative (its accuracy counts it wrong).
"""

from dataclasses import dataclass

from phi3v.errors import UsageError


CARDS = ("phi-3-vision-128k-instruct", "phi-3.5-vision-instruct")
CARD_CHECKPOINTS = {
    "microsoft/Phi-3-vision-128k-instruct": "phi-3-vision-128k-instruct",
    "microsoft/Phi-3.5-vision-instruct": "phi-3.5-vision-instruct",
}
TOLERANCE = 1.5  # points: the largest gap between the card and lmms-eval's reproduction (TextVQA)


@dataclass(frozen=True)
class PublishedBenchmark:
    """One row of the cards' table.

    Args:
        name (`str`): the benchmark and split as the cards name them, e.g. `"TextVQA (val)"`.
        task (`str`): the lmms-eval task that runs it.
        metric (`str`): the key of lmms-eval's results for the score, `"{metric},{filter}"`.
        scale (`float`): multiplies lmms-eval's value into points (100 for a fraction, 1 for a percentage).
        published (`dict[str, float]`): card name (`CARDS`) -> published score, in points.
        lmms_eval_reproduction (`float`, *optional*): lmms-eval's reproduction of Phi-3-V, where it reported one.
        docs (`int`): the number of items lmms-eval evaluates (the split's size), for time estimates.
        comparable (`bool`): whether the task measures what the card measured, so the tolerance applies.
        note (`str`): how the task differs from the card's measurement, if it does.
    """

    name: str
    task: str
    metric: str
    scale: float
    published: dict
    lmms_eval_reproduction: float | None
    docs: int
    comparable: bool = True
    note: str = ""


PUBLISHED_BENCHMARKS = (
    PublishedBenchmark(
        name="MMMU (val)",
        task="mmmu_val",
        metric="mmmu_acc,none",
        scale=1.0,
        published={CARDS[0]: 40.4, CARDS[1]: 43.0},
        lmms_eval_reproduction=40.7,
        docs=900,
    ),
    PublishedBenchmark(
        name="MMBench (dev-en)",
        task="mmbench_en_dev_static",
        metric="gpt_eval_score,none",
        scale=1.0,
        published={CARDS[0]: 80.5, CARDS[1]: 81.9},
        lmms_eval_reproduction=80.5,
        docs=4329,
        note="static answer extraction (lmms-eval's GPT matching gave 73.7)",
    ),
    PublishedBenchmark(
        name="ScienceQA (img-test)",
        task="scienceqa_img",
        metric="exact_match,none",
        scale=100.0,
        published={CARDS[0]: 90.8, CARDS[1]: 91.3},
        lmms_eval_reproduction=90.6,
        docs=2017,
    ),
    PublishedBenchmark(
        name="MathVista (testmini)",
        task="mathvista_testmini_format",
        metric="llm_as_judge_eval,none",
        scale=1.0,
        published={CARDS[0]: 44.5, CARDS[1]: 43.9},
        lmms_eval_reproduction=44.4,
        docs=1000,
        note="LLM judge: needs OPENAI_API_KEY",
    ),
    PublishedBenchmark(
        name="InterGPS (test)",
        task="geometry3k",
        metric="exact_match,none",
        scale=100.0,
        published={CARDS[0]: 38.1, CARDS[1]: 36.3},
        lmms_eval_reproduction=None,
        docs=601,
        comparable=False,
        note="lmms-eval's geometry3k is a 4-choice variant, not the card's InterGPS",
    ),
    PublishedBenchmark(
        name="AI2D (test)",
        task="ai2d",
        metric="exact_match,flexible-extract",
        scale=100.0,
        published={CARDS[0]: 76.7, CARDS[1]: 78.1},
        lmms_eval_reproduction=77.1,
        docs=3088,
    ),
    PublishedBenchmark(
        name="ChartQA (test)",
        task="chartqa",
        metric="relaxed_overall,none",
        scale=100.0,
        published={CARDS[0]: 81.4, CARDS[1]: 81.8},
        lmms_eval_reproduction=81.4,
        docs=2500,
    ),
    PublishedBenchmark(
        name="TextVQA (val)",
        task="textvqa_val",
        metric="exact_match,none",
        scale=100.0,
        published={CARDS[0]: 70.9, CARDS[1]: 72.0},
        lmms_eval_reproduction=69.4,
        docs=5000,
    ),
    PublishedBenchmark(
        name="POPE (test)",
        task="pope",
        metric="pope_f1_score,none",
        scale=100.0,
        published={CARDS[0]: 85.8, CARDS[1]: 86.1},
        lmms_eval_reproduction=86.2,
        docs=9000,
        note="the cards do not name the metric: F1, as LLaVA-1.5 reports it",
    ),
)
BENCHMARKS_BY_TASK = {benchmark.task: benchmark for benchmark in PUBLISHED_BENCHMARKS}


def check_tasks(tasks: list[str]) -> list[str]:
    """The tasks, each one of the cards' benchmarks (`PUBLISHED_BENCHMARKS`), without repeats.

    Raises:
        `UsageError`: naming the tasks that are not, and listing those that are.
    """
    unknown = [task for task in tasks if task not in BENCHMARKS_BY_TASK]
    if unknown or not tasks:
        raise UsageError(f"Not a benchmark of the model cards: {unknown}; choose among {sorted(BENCHMARKS_BY_TASK)}.")
    return list(dict.fromkeys(tasks))
