"""What a training run reads: the dataset's layout and its converter, the task the model is trained for, and the
checks that stop a bad setup at start-up (every row of the splits it reads, a raw catalogue, an answer template that
cannot be read back)."""

from collections.abc import Callable, Mapping

import datasets

from phi3v.checks import check_choice
from phi3v.data.loading import load_splits
from phi3v.data.validation import CheckedSplits, check_splits, conversation_check, preference_check
from phi3v.tasks import Task, build_task
from phi3v.tasks.catalogue import AnswerTemplate
from phi3v.tasks.config import CONVERSATION, TASK_NAMES, TaskConfig

from .configs import Phi3VScriptArguments


def task_config(script_args: Phi3VScriptArguments) -> TaskConfig:
    """The task config of a run's arguments (`task`, `dataset_format`, `question`, `answer_template`)."""
    check_choice("task", script_args.task, TASK_NAMES, allow_none=True)
    return TaskConfig(
        task=script_args.task or CONVERSATION,
        dataset_format=script_args.dataset_format,
        question=script_args.question,
        answer_template=AnswerTemplate(script_args.answer_template).template,
    )


def check_run_rows(
    script_args: Phi3VScriptArguments,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None = None,
    preference: bool = False,
) -> tuple[datasets.Dataset, datasets.Dataset | None, CheckedSplits]:
    """Every row of the training and validation splits, checked before the model loads (`phi3v.data.validation`):
    the run stops on bad rows, or leaves them out with `drop_invalid_rows`.

    Args:
        script_args ([`Phi3VScriptArguments`]): the layout, split names, `drop_invalid_rows`.
        train_dataset (`datasets.Dataset`): the training split, whose columns tell the layout.
        eval_dataset (`datasets.Dataset`, *optional*): the validation split.
        preference (`bool`, *optional*, defaults to `False`): the rows are preference pairs (`dpo.py`).

    Returns:
        `tuple`: the training rows and validation rows kept, and the check (`CheckedSplits.write_report` writes the
        dropped rows' reasons into `output_dir` once training starts).

    Raises:
        `DataError`: listing the first bad rows (split, row, field, problem) and their total.
    """
    if preference:
        check = preference_check
    else:
        _, converter = task_config(script_args).row_converter(
            train_dataset.column_names, script_args.dataset_name, script_args.image_folder
        )
        check = conversation_check(converter)
    train_split, eval_split = script_args.dataset_train_split, script_args.dataset_test_split
    splits = {train_split: train_dataset} | ({eval_split: eval_dataset} if eval_dataset is not None else {})
    checked = check_splits(splits, check, script_args.drop_invalid_rows, script_args.dataset_name)
    return checked.splits[train_split], checked.splits[eval_split] if eval_dataset is not None else None, checked


def training_task(
    script_args: Phi3VScriptArguments, train_dataset: datasets.Dataset
) -> tuple[Task, Callable[[Mapping], dict] | None]:
    """The run's task (its config, saved with the model, names the detected layout) and the converter from its rows
    to TRL's conversational format.

    Args:
        script_args ([`Phi3VScriptArguments`]): `dataset_format`, `task`, `image_folder`, `question`,
            `answer_template`, `dataset_name`.
        train_dataset (`datasets.Dataset`): the training split, whose columns tell the layout.

    Raises:
        `ValueError`: for a layout the columns do not fit, a catalogue whose images are not images yet (a raw
            table of URLs), or an answer template that cannot be read back from the training rows.
    """
    config = task_config(script_args)
    layout, converter = config.row_converter(
        train_dataset.column_names, script_args.dataset_name, script_args.image_folder
    )
    task = build_task(config.for_layout(layout))
    task.check_training_rows(train_dataset, layout, script_args.dataset_name)
    return task, converter


def load_run_splits(
    script_args: Phi3VScriptArguments, training_args
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The training split and, when the run evaluates, the validation split, read (and their local paths checked)
    before the model loads.

    Args:
        script_args ([`Phi3VScriptArguments`]): dataset name, config, split names, `image_folder`,
            `allow_local_paths`, and a CSV file's `encoding` and `delimiter`.
        training_args ([`~transformers.TrainingArguments`]): `eval_strategy` says whether the validation split is read.

    Returns:
        `tuple`: the training split, and the validation split or `None` with `eval_strategy: no`.
    """
    train_split, eval_split = script_args.dataset_train_split, script_args.dataset_test_split
    use_eval = training_args.eval_strategy != "no"
    splits = load_splits(
        script_args.dataset_name,
        [train_split] + ([eval_split] if use_eval else []),
        script_args.dataset_config,
        script_args.image_folder,
        script_args.allow_local_paths,
        script_args.encoding,
        script_args.delimiter,
    )
    return splits[train_split], splits[eval_split] if use_eval else None
