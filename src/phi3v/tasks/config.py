"""What a model was trained to do, saved beside it: the dataset layout, the task, and the catalogue's question and
answer template. `scripts/evaluate.py`, `make_preferences.py`, `predict.py` and the W&B table read it, so a model
trained with its own `answer_template` is asked and scored with that template without another flag.
"""

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from phi3v.data.formats import row_converter

from .catalogue import DEFAULT_ANSWER_TEMPLATE, DEFAULT_QUESTION, AnswerTemplate, to_conversation
from .cookbook import TASKS


TASK_CONFIG_NAME = "phi3v_task.json"
CATALOGUE = "catalogue"
CONVERSATION = "conversation"  # any conversational dataset: the last assistant turn, exact match and edit similarity
TASK_NAMES = (CATALOGUE, CONVERSATION, *TASKS)  # what `task` / `--task` accept


@dataclass(frozen=True)
class TaskConfig:
    """How rows were asked and answered in training.

    Args:
        task (`str`, *optional*, defaults to `"conversation"`): `catalogue`, `conversation`, or a published task
            (`docvqa`, `hateful_memes`, `nlvr2`).
        dataset_format (`str`, *optional*, defaults to `"auto"`): the layout of the training data.
        question (`str`, *optional*): the catalogue question.
        answer_template (`str`, *optional*): the catalogue answer template.
    """

    task: str = CONVERSATION
    dataset_format: str = "auto"
    question: str = DEFAULT_QUESTION
    answer_template: str = DEFAULT_ANSWER_TEMPLATE

    def row_converter(
        self, columns: Sequence[str], dataset_name: str, image_folder: str | None = None
    ) -> tuple[str, Callable[[Mapping], dict] | None]:
        """The dataset's layout and its rows' converter to TRL's conversational format (`phi3v.data.formats`), with
        this config's catalogue question and template; relative LLaVA paths resolve against `image_folder`, else
        the dataset file's folder (or the dataset directory)."""
        path = Path(dataset_name)
        folder = image_folder or (path.parent if path.is_file() else path)
        catalogue = functools.partial(
            to_conversation, question=self.question, template=AnswerTemplate(self.answer_template)
        )
        return row_converter(self.dataset_format, columns, catalogue, folder)

    def for_layout(self, layout: str) -> "TaskConfig":
        """This config for rows of `layout`: catalogue rows make the conversation task the catalogue's (they are asked
        the catalogue question and read with the template); a named task stays."""
        task = CATALOGUE if layout == "catalogue" and self.task == CONVERSATION else self.task
        return replace(self, task=task, dataset_format=layout)

    def save(self, directory: str | Path) -> Path:
        """Writes `phi3v_task.json` into `directory`."""
        path = Path(directory) / TASK_CONFIG_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def load_task_config(model_path: str | Path) -> TaskConfig | None:
    """The task config saved beside a model (a local output directory of this project), or `None`."""
    path = Path(model_path) / TASK_CONFIG_NAME
    if not path.is_file():
        return None
    return TaskConfig(**json.loads(path.read_text()))
