"""lmms-eval's own tasks, pointed at local copies of their Hub datasets: for runs without the Hub, and for the tests.

lmms-eval loads a task's data with `datasets.load_dataset(dataset_path, dataset_name, ...)`, where `dataset_path` is a
Hub id from the task's YAML. A local copy of that Hub repository (`huggingface-cli download --repo-type dataset
lmms-lab-encoder/POPE --local-dir DATA/lmms-lab-encoder/POPE`, or `phi3v.fixtures.card_benchmarks`) loads the same way
from its directory. `write_local_tasks` writes, for each task, a YAML that includes lmms-eval's own and only replaces
`dataset_path` with that directory (drops `token`, which a local directory does not need, and gives the converted
data a cache of its own, beside the YAMLs): the prompts, the
metrics and the filters stay lmms-eval's, read from its installed files. The directory is then the only task source
of a `TaskManager` (`local_task_manager`), because lmms-eval lets its built-in tasks win over an included one of the
same name.
"""

import re
from importlib.metadata import version
from pathlib import Path

import lmms_eval.tasks
import yaml
from lmms_eval.tasks import TaskManager
from lmms_eval.utils import load_yaml_config

from phi3v.errors import DataError, MissingPathError, UsageError


def task_yaml_paths(tasks: list[str]) -> dict[str, Path]:
    """The installed YAML file of each of lmms-eval's tasks.

    lmms-eval's `TaskManager` parses every one of its ~2,000 YAML files to index them (40 s on a loaded CPU); the
    files that can define a task are found by their `task:` line first, and only those are parsed.

    Raises:
        `UsageError`: for a name that is not a task of lmms-eval (a group, or nothing).
    """
    root = Path(lmms_eval.tasks.__file__).parent
    paths = {}
    for task in tasks:
        line = re.compile(rf"^task:\s*[\"']?{re.escape(task)}[\"']?\s*$", re.MULTILINE)
        found = [
            path
            for path in sorted(root.rglob("*.yaml"))
            if line.search(path.read_text(errors="replace")) and _simple_config(path).get("task") == task
        ]
        if not found:
            raise UsageError(
                f"{task} is not a task of lmms-eval {version('lmms_eval')} (`lmms-eval tasks` lists them)."
            )
        paths[task] = found[0]
    return paths


def write_local_tasks(tasks: list[str], data_dir: str | Path, tasks_dir: str | Path) -> Path:
    """Writes `tasks_dir/{task}.yaml` for each task: lmms-eval's task with its data read from `data_dir`.

    Args:
        tasks (`list[str]`): lmms-eval task names, e.g. `["pope", "chartqa"]`.
        data_dir (`str` or `Path`): holds each task's Hub repository under its id, e.g. `data_dir/lmms-lab-encoder/POPE`.
        tasks_dir (`str` or `Path`): where to write the YAMLs (created).

    Raises:
        `MissingPathError`: when a task's repository is not under `data_dir`.
    """
    tasks_dir = Path(tasks_dir)
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for task, yaml_path in task_yaml_paths(tasks).items():
        config = _simple_config(yaml_path)
        dataset_path = config.get("dataset_path")
        if not dataset_path:
            raise DataError(f"lmms-eval's task {task} ({yaml_path}) names no dataset_path to point at local data.")
        local = Path(data_dir) / dataset_path
        if not local.is_dir():
            raise MissingPathError(f"{local} does not exist: task {task} reads the Hub dataset {dataset_path}.")
        dataset_kwargs = {key: value for key, value in (config.get("dataset_kwargs") or {}).items() if key != "token"}
        # A cache of these tasks' own: `datasets` keys a local repository's cache by its name and file patterns, not its
        # path or content, so a shared cache would serve another directory's (or an older) POPE.
        dataset_kwargs["cache_dir"] = str((tasks_dir / "datasets_cache").resolve())
        overlay = {"include": str(yaml_path), "dataset_path": str(local.resolve()), "dataset_kwargs": dataset_kwargs}
        (tasks_dir / f"{task}.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return tasks_dir


def local_task_manager(tasks_dir: str | Path, model_name: str) -> TaskManager:
    """A `TaskManager` whose only tasks are those of `tasks_dir` (`write_local_tasks`)."""
    return TaskManager("ERROR", include_path=str(tasks_dir), include_defaults=False, model_name=model_name)


def _simple_config(yaml_path: Path) -> dict:
    """A task YAML with its `include`s resolved and its `!function` tags left unresolved (lmms-eval's 'simple' mode)."""
    return load_yaml_config(str(yaml_path), mode="simple")
