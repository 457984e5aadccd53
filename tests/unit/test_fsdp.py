"""The FSDP config shards the model by its real layer classes (the 2-process FSDP2 checks:
tests/e2e/test_two_processes.py)."""

import yaml

from ..conftest import REPO_ROOT


def test_fsdp_config_names_the_model_shard_units():
    from phi3v import Phi3VForCausalLM

    config = yaml.safe_load((REPO_ROOT / "accelerate_configs" / "fsdp.yaml").read_text())["fsdp_config"]
    names = config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    assert names == Phi3VForCausalLM._no_split_modules
    assert config["fsdp_version"] == 2 and config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
