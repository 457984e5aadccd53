"""One model on the model cards' benchmarks through lmms-eval: its tasks, prompts and metrics, our native model.

`evaluate_model` hands lmms-eval's `simple_evaluate` a [`Phi3VNative`] and the tasks (lmms-eval's own, or the same
pointed at local data by `local_tasks`), and returns lmms-eval's results with each card benchmark's score in points.
Under `accelerate launch`, lmms-eval splits the documents between the processes and gathers the results on the main
process; the other processes get `None`.

Example:

```python
>>> scores, results = evaluate_model("outputs/phi3v-burberry", ["pope", "chartqa"], limit=50, dtype="bfloat16")
>>> scores
{'pope': 84.0, 'chartqa': 78.0}
```
"""

import argparse
import gc
from pathlib import Path

import torch
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.tasks import TaskManager

from phi3v.card_benchmarks.lmms_model import Phi3VNative
from phi3v.card_benchmarks.plugin import MODEL_NAME
from phi3v.card_benchmarks.published import BENCHMARKS_BY_TASK, check_tasks
from phi3v.errors import DataError


def card_scores(results: dict, tasks: list[str]) -> dict[str, float | None]:
    """Each task's score in points from lmms-eval's `results`, in the order of `tasks`; `None` where lmms-eval
    computed none (e.g. a judged metric without its API key).

    Raises:
        `DataError`: when a task's results lack the metric the table reads, which means lmms-eval changed.
    """
    scores = {}
    for task in tasks:
        benchmark, metrics = BENCHMARKS_BY_TASK[task], results[task]
        if benchmark.metric not in metrics:
            raise DataError(f"lmms-eval's results for {task} have no {benchmark.metric}: {sorted(metrics)}.")
        value = metrics[benchmark.metric]
        scores[task] = None if value is None or isinstance(value, str) else float(value) * benchmark.scale
    return scores


def evaluate_model(
    model: str,
    tasks: list[str],
    task_manager: TaskManager | None = None,
    limit: int | None = None,
    base_model: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    batch_size: int = 8,
    num_crops: int | None = None,
    attn_implementation: str | None = None,
    gen_kwargs: str | None = None,
    files_dir: str | Path | None = None,
) -> tuple[dict[str, float | None], dict] | tuple[None, None]:
    """Evaluates one model with lmms-eval and frees it.

    Args:
        model (`str`): a checkpoint, a merged model or a LoRA adapter directory (as `Phi3VNative`'s `pretrained`).
        tasks (`list[str]`): card benchmarks' lmms-eval tasks (`check_tasks`).
        task_manager (`TaskManager`, *optional*): where the tasks come from (default: lmms-eval's own, from the Hub).
        limit (`int`, *optional*): evaluate only the first `limit` documents of each task: a quick check, not the
            published number.
        base_model, dtype, device, batch_size, num_crops, attn_implementation: as for [`Phi3VNative`].
        gen_kwargs (`str`, *optional*): lmms-eval's generation override for every task (`max_new_tokens=16`).
        files_dir (`str` or `Path`, *optional*): where the tasks that write files (TextVQA's and MMBench's submission
            files) write them, under `submissions/` (default: the working directory, as lmms-eval does).

    Returns:
        `tuple`: `(scores, results)`: card scores in points (`card_scores`) and lmms-eval's whole results dict (its
        `results`, `configs`, `n-samples`, without the per-document samples); `(None, None)` on processes other than
        the main one.
    """
    lm = Phi3VNative(
        model,
        base_model=base_model,
        dtype=dtype,
        device=device,
        batch_size=batch_size,
        num_crops=num_crops,
        attn_implementation=attn_implementation,
    )
    tasks = check_tasks(tasks)
    task_manager = task_manager or TaskManager("ERROR", model_name=MODEL_NAME)
    output = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=task_manager,
        limit=limit,
        gen_kwargs=gen_kwargs,
        log_samples=False,
        bootstrap_iters=0,  # the table reports points, not lmms-eval's bootstrap standard errors
        verbosity="ERROR",
        # What lmms-eval's command line passes by default: its output path (for the submission files) and scoring on
        # the documents without their images.
        cli_args=argparse.Namespace(output_path=str(files_dir) if files_dir else None, process_with_media=False),
    )
    del lm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the next model of the report loads into the memory this one held
    if output is None:
        return None, None
    kept = {key: output[key] for key in ("results", "configs", "n-samples") if key in output}
    return card_scores(output["results"], tasks), kept
