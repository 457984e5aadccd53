"""Tasks: how a dataset's rows are asked, answered and scored. One [`Task`] per kind of task (`base`: the plain
conversation; `catalogue`; `published`: the Cookbook's), built from a model's saved task config (`loading`)."""

from .base import Task
from .catalogue.task import CatalogueTask
from .cookbook import (
    COOKBOOK_LORA_TARGETS,
    PUBLISHED,
    PUBLISHED_THROUGHPUT,
    TASKS,
    CookbookTask,
    DataSource,
    PublishedResult,
    PublishedThroughput,
    anls,
    cookbook_accuracy,
)
from .loading import build_task, load_task
from .published import PublishedTask


__all__ = [
    "COOKBOOK_LORA_TARGETS",
    "PUBLISHED",
    "PUBLISHED_THROUGHPUT",
    "TASKS",
    "CatalogueTask",
    "CookbookTask",
    "DataSource",
    "PublishedResult",
    "PublishedTask",
    "PublishedThroughput",
    "Task",
    "anls",
    "build_task",
    "cookbook_accuracy",
    "load_task",
]
