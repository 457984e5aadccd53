"""FSDP2 on CPU: accelerate turns FSDP into DDP without an accelerator, so torch's `fully_shard` is run directly.

Two gloo processes shard the tiny model by the units `accelerate_configs/fsdp.yaml` names (the Phi-3 decoder layer,
the CLIP encoder layer): losses and gathered gradients equal the unsharded model's, a LoRA model shards and trains,
and the full state dict gathered from the shards saves with the official tensor names and reloads to the same logits.
The checks themselves are in `tests/fsdp_worker.py`.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from ..conftest import REPO_ROOT


@pytest.mark.several_processes
def test_fully_shard_matches_unsharded_and_saves_a_loadable_model(tiny_checkpoint, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(REPO_ROOT / "tests" / "fsdp_worker.py"), str(tiny_checkpoint), str(tmp_path)]
    # Own process group, so a hang kills torchrun and both ranks, not torchrun alone.
    launcher = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = launcher.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        output, _ = launcher.communicate()
        pytest.fail(f"The 2-process FSDP run hung for 300 s:\n{output[-6000:]}")
    assert launcher.returncode == 0, output[-6000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    # 2 decoder layers + 2 CLIP encoder layers; every trainable parameter's gradient was compared.
    assert summary["units"] == 4
    assert summary["gradients_compared"] > 30 and summary["lora_gradients_compared"] == summary["lora_parameters"] > 0
    assert (tmp_path / "full" / "model.safetensors").exists()
