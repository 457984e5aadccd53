"""Tasks: how a dataset's rows are asked, answered and scored."""

from .cookbook import (
    PUBLISHED,
    TASKS,
    DataSource,
    PublishedResult,
    Task,
    anls,
    cookbook_accuracy,
)


__all__ = ["PUBLISHED", "TASKS", "DataSource", "PublishedResult", "Task", "anls", "cookbook_accuracy"]
