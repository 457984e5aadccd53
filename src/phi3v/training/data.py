"""Loading a catalogue for training: a prepared directory (`save_to_disk`) or a Hub dataset with the same columns."""

from pathlib import Path

import datasets


def load_catalogue(dataset_name: str, dataset_config: str | None = None) -> datasets.DatasetDict:
    """Loads the splits of a catalogue.

    Args:
        dataset_name (`str`): a directory written by `scripts/make_synthetic_catalogue.py` or the data preparation
            script (read with `datasets.load_from_disk`), or a Hub dataset id.
        dataset_config (`str`, *optional*): the Hub dataset's configuration name.
    """
    if dataset_name is None:
        raise ValueError("Set `dataset_name`: a prepared catalogue directory or a Hub dataset id.")
    if Path(dataset_name).is_dir():
        return datasets.load_from_disk(dataset_name)
    return datasets.load_dataset(dataset_name, name=dataset_config)
