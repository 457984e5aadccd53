"""One rank of the FSDP2 checks of `tests/e2e/test_two_processes.py` (CPU, gloo), launched by the test on two
processes (with torchrun, by accelerate's `multi_gpu` config), or by hand as

    torchrun --standalone --nproc_per_node 2 tests/fsdp_worker.py CHECKPOINT OUTPUT_DIR

Each rank trains on its own half of one batch. The sharded model must give each rank the loss the unsharded model
gives on that half, and gradients equal to the unsharded mean over both halves; then the full state dict gathered
from the shards is saved with `save_pretrained` and reloaded. A LoRA model is checked the same way. Any failed
check raises, so the rank exits non-zero; rank 0 writes `summary.json` when every check has passed.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from peft import LoraConfig, get_peft_model
from PIL import Image
from safetensors.torch import load_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)


REPO_ROOT = Path(__file__).resolve().parent.parent
LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
TEXTS = [
    "<|user|>\n<|image_1|>\nWhat is shown in this image?<|end|>\n<|assistant|>\nA red bag.<|end|>\n",
    "<|user|>\nA question with no image at all.<|end|>\n<|assistant|>\nNo image here.<|end|>\n",
    "<|user|>\n<|image_1|>\n<|image_2|>\nCompare them.<|end|>\n<|assistant|>\nThe second is taller.<|end|>\n",
    "<|user|>\n<|image_1|>\nPrice?<|end|>\n<|assistant|>\n$1,290.00<|end|>\n",
]
IMAGES = [
    [Image.new("RGB", (60, 60), (200, 30, 30))],
    [],
    [Image.new("RGB", (120, 60), (30, 200, 30)), Image.new("RGB", (50, 110), (30, 30, 200))],
    [Image.new("RGB", (90, 80), (120, 120, 20))],
]


def wrap_class_names() -> list[str]:
    """The shard units `accelerate_configs/fsdp.yaml` names."""
    config = yaml.safe_load((REPO_ROOT / "accelerate_configs" / "fsdp.yaml").read_text())
    return config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"].split(",")


def shard(model: torch.nn.Module, mesh) -> int:
    """`fully_shard` on every module of a class the config names, then on the root, as accelerate does."""
    names = wrap_class_names()
    units = [module for module in model.modules() if type(module).__name__ in names]
    missing = set(names) - {type(module).__name__ for module in units}
    assert not missing, f"accelerate_configs/fsdp.yaml names {sorted(missing)}, which the model does not have"
    for module in units:
        fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return len(units)


def load(checkpoint: str) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    model.freeze_unused_vision_parameters()  # as training does: DDP/FSDP see no parameter without a gradient
    return model


def half_batches(processor) -> list[dict]:
    halves = []
    for rows in ([0, 1], [2, 3]):
        batch = dict(processor([TEXTS[i] for i in rows], [IMAGES[i] for i in rows], padding_side="right"))
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        halves.append(batch)
    return halves


def reference_gradients(model, halves) -> list[float]:
    """Backpropagates the mean of the two half-batch losses through the unsharded model; returns both losses."""
    losses = []
    for batch in halves:
        loss = model(**batch).loss
        (loss / len(halves)).backward()
        losses.append(loss.item())
    return losses


def check_gradients(sharded, reference) -> int:
    reference_parameters = dict(reference.named_parameters())
    compared = 0
    for name, parameter in sharded.named_parameters():
        expected = reference_parameters[name].grad
        if parameter.grad is None:
            assert expected is None, f"{name}: no gradient when sharded"
            continue
        torch.testing.assert_close(parameter.grad.full_tensor(), expected, atol=1e-5, rtol=1e-5, msg=name)
        compared += 1
    assert compared > 0
    return compared


def full_model_checks(checkpoint: str, output_dir: Path, mesh, rank: int) -> dict:
    processor = AutoProcessor.from_pretrained(checkpoint)
    halves = half_batches(processor)
    reference, sharded = load(checkpoint), load(checkpoint)
    units = shard(sharded, mesh)

    reference_losses = reference_gradients(reference, halves)
    loss = sharded(**halves[rank]).loss
    loss.backward()
    assert abs(loss.item() - reference_losses[rank]) < 1e-5, (loss.item(), reference_losses[rank])
    compared = check_gradients(sharded, reference)

    # One identical SGD step on both, then gather, save and reload the sharded one.
    for model in (reference, sharded):
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    state_dict = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    saved_dir = output_dir / "full"
    if rank == 0:
        sharded.save_pretrained(saved_dir, state_dict=state_dict)
        saved_names = set(load_file(saved_dir / "model.safetensors"))
        assert saved_names == set(reference.state_dict()), saved_names ^ set(reference.state_dict())
        reloaded = AutoModelForCausalLM.from_pretrained(saved_dir).eval()
        batch = {k: v for k, v in halves[1].items() if k != "labels"}
        with torch.no_grad():
            expected, got = reference(**batch).logits, reloaded(**batch).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        untrained = load(checkpoint)
        with torch.no_grad():
            assert not torch.allclose(untrained(**batch).logits, got), "the step changed nothing"
    dist.barrier()
    return {"units": units, "gradients_compared": compared, "losses": reference_losses}


def lora_checks(checkpoint: str, mesh, rank: int) -> dict:
    processor = AutoProcessor.from_pretrained(checkpoint)
    halves = half_batches(processor)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS)
    models = []
    for _ in range(2):
        torch.manual_seed(0)  # the same adapter initialisation in both
        models.append(get_peft_model(load(checkpoint), config))
    reference, sharded = models
    shard(sharded, mesh)

    reference_losses = reference_gradients(reference, halves)
    loss = sharded(**halves[rank]).loss
    loss.backward()
    assert abs(loss.item() - reference_losses[rank]) < 1e-5, (loss.item(), reference_losses[rank])
    compared = check_gradients(sharded, reference)
    trainable = {n: p.full_tensor().clone() for n, p in sharded.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    torch.optim.AdamW([p for p in sharded.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0).step()
    changed = [
        n for n, p in sharded.named_parameters() if p.requires_grad and not torch.equal(p.full_tensor(), trainable[n])
    ]
    # LoRA B starts at zero, so the first step moves B (A's gradient is zero until B is not).
    assert changed and all("lora_B" in name for name in changed), changed
    loss_after = sharded(**halves[rank]).loss
    assert torch.isfinite(loss_after)
    return {"lora_parameters": len(trainable), "lora_gradients_compared": compared, "lora_changed": len(changed)}


def main(checkpoint: str, output_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    output_dir = Path(output_dir)
    summary = full_model_checks(checkpoint, output_dir, mesh, rank)
    summary |= lora_checks(checkpoint, mesh, rank)
    dist.barrier()
    if rank == 0:
        (output_dir / "summary.json").write_text(json.dumps(summary))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
