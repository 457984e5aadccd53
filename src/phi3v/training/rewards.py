"""What GRPO samples and rewards: prompts from any dataset layout, and the task's own score as TRL reward functions.

The prompt of a row is its conversation up to the last assistant turn, and the reference is that turn
(`Task.eval_items`, as evaluation asks it). `Task.rewards(answer, item)` scores one answer by component, each in
[0, 1] (the catalogue: `format`, `price`, `category`, `title`; the Cookbook's tasks: `anls` or `cookbook_accuracy`;
a plain conversation: `edit_similarity`); each component becomes one TRL reward function named after it, so TRL logs
it as `rewards/<name>/mean` and the recipe weighs it (`reward_weights`). A recipe may also name a function of its own
by a dotted path (`my_rewards:brevity` or `my_rewards.brevity`), called as TRL calls reward functions:
`f(prompts, completions, completion_ids, **columns) -> list[float | None]`, with the columns `id`, `references` and,
for catalogue rows, `truth` (the row's fields).
"""

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import datasets

from phi3v.data.image_columns import undecoded
from phi3v.errors import UsageError
from phi3v.tasks import Task


ITEM_COLUMNS = ("id", "prompt", "images", "references", "truth")
# What TRL passes to every reward function besides the dataset's columns (`GRPOTrainer._calculate_rewards`).
TRL_REWARD_ARGUMENTS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")


def grpo_dataset(
    task: Task, rows: datasets.Dataset, layout: str, to_conversation: Callable | None
) -> datasets.Dataset:
    """Rows of any layout as GRPO prompts: `prompt` (messages with `<|image_k|>` tags, as evaluation asks them),
    `images`, and what the rewards read (`id`, `references`, and `truth` for catalogue rows).

    Args:
        task ([`~phi3v.tasks.Task`]): turns rows into items (`Task.eval_items`).
        rows (`datasets.Dataset`): a split, in `layout`.
        layout (`str`): its layout (`phi3v.data.formats`).
        to_conversation (`Callable`, *optional*): the layout's converter to TRL's conversational format.
    """
    items = task.eval_items(undecoded(rows), layout, to_conversation)
    dataset = datasets.Dataset.from_list([{key: item[key] for key in ITEM_COLUMNS if key in item} for item in items])
    return dataset.cast_column("images", datasets.List(datasets.Image()))


def answer_text(completion) -> str:
    """The text of a completion as TRL hands it over: a string, or `[{"role": "assistant", "content": ...}]`."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")


class TaskReward:
    r"""
    One component of `Task.rewards` as a TRL reward function, named after it (TRL logs `rewards/<name>/mean`).

    Args:
        task ([`~phi3v.tasks.Task`]): scores the answers.
        component (`str`): a key of `task.rewards(...)`.
    """

    def __init__(self, task: Task, component: str):
        self.task = task
        self.component = component
        self.__name__ = component

    def __call__(self, prompts, completions, references, truth=None, **kwargs) -> list[float]:
        rewards = []
        for index, completion in enumerate(completions):
            item = {"references": references[index]} | ({"truth": truth[index]} if truth is not None else {})
            rewards.append(self.task.rewards(answer_text(completion), item)[self.component])
        return rewards


def task_reward_names(task: Task, item: Mapping) -> list[str]:
    """The components of the task's reward, read from the rewards of an empty answer to `item`."""
    return list(task.rewards("", item))


def load_reward_function(path: str, columns: Sequence[str]) -> Callable:
    """A reward function of the user's, from `module:function` or `module.function` (the module found from the current
    directory too), checked to take what TRL passes it.

    Args:
        path (`str`): the dotted path.
        columns (`Sequence[str]`): the dataset's columns, which TRL passes as keyword arguments.

    Raises:
        `UsageError`: naming the path, when the module does not import, the name is missing or not callable, or its
            signature cannot take TRL's arguments.
    """
    module_name, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise UsageError(f"Reward function {path!r} is not a dotted path (`module:function` or `module.function`).")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001  (any import failure is the recipe's to fix)
        raise UsageError(f"Reward function {path!r}: module {module_name!r} does not import: {error!r}.") from None
    function = getattr(module, name, None)
    if not callable(function):
        what = "has no attribute" if function is None else "is not callable:"
        raise UsageError(f"Reward function {path!r}: {module_name} {what} {name!r}.")
    arguments = {key: [] for key in (*TRL_REWARD_ARGUMENTS, *columns) if key != "prompt"}
    try:
        inspect.signature(function).bind(**arguments)
    except TypeError as error:
        raise UsageError(
            f"Reward function {path!r} cannot take TRL's arguments ({error}): define it as "
            "`def f(prompts, completions, **kwargs) -> list[float]`."
        ) from None
    return function


def reward_functions(task: Task, names: Sequence[str] | None, dataset: datasets.Dataset) -> list[Callable]:
    """The run's reward functions: `names` (task components or dotted paths), or every component of the task's reward.

    Raises:
        `UsageError`: for a name that is neither a component of the task's reward nor a loadable function.
    """
    components = task_reward_names(task, dataset[0])
    functions = []
    for name in names or components:
        if name in components:
            functions.append(TaskReward(task, name))
        elif "." in name or ":" in name:
            functions.append(load_reward_function(name, dataset.column_names))
        else:
            raise UsageError(
                f"Reward {name!r} is not a component of the {task.name} task's reward ({', '.join(components)}) nor "
                "a dotted path to a function (`module:function`)."
            )
    return functions
