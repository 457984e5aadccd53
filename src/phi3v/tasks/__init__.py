"""Tasks: how a dataset's rows are asked, answered and scored."""

from .cookbook import (
    COOKBOOK_LORA_TARGETS,
    PUBLISHED,
    PUBLISHED_THROUGHPUT,
    TASKS,
    DataSource,
    PublishedResult,
    PublishedThroughput,
    Task,
    anls,
    cookbook_accuracy,
)


__all__ = [
    "COOKBOOK_LORA_TARGETS",
    "PUBLISHED",
    "PUBLISHED_THROUGHPUT",
    "TASKS",
    "DataSource",
    "PublishedResult",
    "PublishedThroughput",
    "Task",
    "anls",
    "cookbook_accuracy",
]
