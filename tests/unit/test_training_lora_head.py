"""LoRA on `lm_head`, as the Cookbook's LoRA and QLoRA rows train it: TRL's trainer accepts it, the fused LM head
computes the adapted layer's own log-probabilities, the adapter trains, and a disabled adapter gives the base head."""

import functools

import datasets
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor
from trl import SFTConfig, SFTTrainer

from phi3v.tasks.catalogue import to_conversation
from phi3v.training import Phi3VModelConfig, Phi3VSFTCollator, load_model, lora_config
from phi3v.training.lora_head import MergedLoRAHead


COOKBOOK_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head", "img_projection.0"]


def rows(count=4):
    colours = [(200, 30, 40), (20, 30, 200), (30, 160, 40), (220, 220, 220)]
    return [
        {
            "image": Image.new("RGB", (64, 64), colours[i % 4]),
            "title": ["Red Scarf", "Navy Coat", "Green Hat", "White Bag"][i % 4],
            "category3_code": ["SCARVES", "COATS", "HATS", "BAGS"][i % 4],
            "full_price": [390.0, 1990.0, 290.0, 1290.0][i % 4],
        }
        for i in range(count)
    ]


def build_trainer(checkpoint, output_dir, **lora_kwargs):
    training_args = SFTConfig(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        max_steps=6,
        learning_rate=5e-2,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        activation_checkpointing=True,
        activation_checkpointing_kwargs={"use_reentrant": False},
    )
    model_args = Phi3VModelConfig(
        model_name_or_path=str(checkpoint),
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=COOKBOOK_TARGETS,
        lora_init_weights="gaussian",
        **({"lora_dropout": 0.0} | lora_kwargs),
    )
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = load_model(model_args, training_args)
    collator = Phi3VSFTCollator(processor, None, functools.partial(to_conversation, question="What is it?"))
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=datasets.Dataset.from_list(rows()),
        processing_class=processor,
        peft_config=lora_config(model_args, model),
    )
    return trainer, collator


def test_trl_accepts_lora_on_lm_head_and_trains_it(tiny_checkpoint, tmp_path):
    trainer, _ = build_trainer(tiny_checkpoint, tmp_path)
    head = trainer.model.get_base_model().lm_head
    before = {name: p.detach().clone() for name, p in head.named_parameters()}
    trainer.train()
    after = dict(head.named_parameters())
    assert not torch.equal(before["lora_B.default.weight"], after["lora_B.default.weight"])
    assert not torch.equal(before["lora_A.default.weight"], after["lora_A.default.weight"])
    assert torch.equal(before["base_layer.weight"], after["base_layer.weight"])  # LoRA: the base stays
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]


def test_fused_log_probs_are_the_adapted_layers_own(tiny_checkpoint, tmp_path):
    trainer, collator = build_trainer(tiny_checkpoint, tmp_path)
    model = trainer.model
    head = model.get_base_model().lm_head
    torch.manual_seed(0)
    with torch.no_grad():
        head.lora_B["default"].weight.normal_(std=0.5)  # a trained-looking adapter, not the zero init
    batch = collator(rows(2))
    model.eval()
    with torch.no_grad():
        fused = model(**batch, fused_lm_head=True)
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        labels = batch["labels"][:, 1:]
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        expected = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (labels != -100)
        assert torch.allclose(fused.log_probs, expected, atol=1e-5)
        # without the adapter (DPO's reference pass) the fused head reads the base weight
        with model.disable_adapter():
            view = model.get_output_embeddings()
            assert isinstance(view, MergedLoRAHead) and view.weight is head.get_base_layer().weight
            base_logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        assert not torch.allclose(base_logits, logits)


@pytest.mark.parametrize("kwargs", [{"lora_dropout": 0.05}, {"use_dora": True}])
def test_lm_head_lora_with_dropout_or_dora_is_refused(tiny_checkpoint, tmp_path, kwargs):
    with pytest.raises(ValueError, match="lm_head"):
        build_trainer(tiny_checkpoint, tmp_path, **kwargs)
