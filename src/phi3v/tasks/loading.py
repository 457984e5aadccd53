"""The one place that tells the kinds of task apart: a [`Task`] from the task config saved with a model."""

from pathlib import Path

from .base import Task
from .catalogue.task import CatalogueTask
from .config import CATALOGUE, TaskConfig, load_task_config
from .cookbook import TASKS
from .published import PublishedTask


def build_task(config: TaskConfig) -> Task:
    """The task `config.task` names: the catalogue, a published Cookbook task, or the plain conversation."""
    if config.task == CATALOGUE:
        return CatalogueTask(config)
    if config.task in TASKS:
        return PublishedTask(config)
    return Task(config)


def load_task(model_path: str | Path) -> Task | None:
    """The task a model of this project was trained for (`phi3v_task.json` beside it), or `None`."""
    config = load_task_config(model_path)
    return None if config is None else build_task(config)
