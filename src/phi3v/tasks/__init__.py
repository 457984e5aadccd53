"""Tasks: how a dataset's rows are asked, answered and scored."""

from .cookbook import (
    COOKBOOK_LORA_TARGETS,
    PUBLISHED,
    TASKS,
    DataSource,
    PublishedResult,
    Task,
    anls,
    cookbook_accuracy,
)


__all__ = [
    "COOKBOOK_LORA_TARGETS",
    "PUBLISHED",
    "TASKS",
    "DataSource",
    "PublishedResult",
    "Task",
    "anls",
    "cookbook_accuracy",
]
