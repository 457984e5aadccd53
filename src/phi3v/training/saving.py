"""The end of every training run, the same for SFT and DPO: save through the trainer (which gathers ZeRO-3 and FSDP
shards), then the processor, the generation config, the task config and a model card that says how to use the model."""

import os
from pathlib import Path

from transformers import ProcessorMixin
from trl import ScriptArguments

from phi3v.inference.quantization import BASE_QUANTIZATION_NAME, save_base_quantization
from phi3v.modeling.chat_format import image_tag, stop_token_ids
from phi3v.tasks.config import TaskConfig


USAGE = """
## Usage

A Phi-3-Vision {kind} fine-tuned with phi3v-recipes (`scripts/{script}`), for the task `{task}`. It loads with
transformers once `phi3v` is imported, which registers the model with the Auto classes (no remote code):

```python
import phi3v  # noqa: F401
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

processor = AutoProcessor.from_pretrained("{path}")
model = AutoModelForCausalLM.from_pretrained("{path}")
messages = [{{"role": "user", "content": "{image}{question}"}}]  # as in training
prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
inputs = processor(prompt, [Image.open("photo.jpg")])
output = model.generate(**inputs, max_new_tokens=64, do_sample=False)  # stops on <|end|>
print(processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
```

or `python scripts/predict.py --model {path} photo.jpg`; `scripts/evaluate.py` reads `phi3v_task.json` (the task,
dataset layout, question and answer template of the training run).
"""

QLORA_NOTE = f"""
The adapter was trained on the base quantised to 4-bit (QLoRA; the settings are in `{BASE_QUANTIZATION_NAME}`).
`scripts/evaluate.py`, `scripts/predict.py` and `scripts/merge_lora.py` quantise the base again the same way, so they
run the model that was trained; `scripts/merge_lora.py` writes it out in full precision (the dequantised 4-bit base
with the adapter merged in).
"""


def save_run(
    trainer,
    processor: ProcessorMixin,
    task_config: TaskConfig,
    script_args: ScriptArguments,
    tags: list[str],
    script: str,
) -> None:
    """Saves the trained model (or adapter) and everything needed to use it into `trainer.args.output_dir`.

    Args:
        trainer (`transformers.Trainer`): the finished SFT or DPO trainer; `save_model` gathers sharded weights.
        processor ([`Phi3VProcessor`]): saved beside the model (its `num_crops` may differ from the base's).
        task_config ([`~phi3v.tasks.config.TaskConfig`]): what the model was trained for (`phi3v_task.json`).
        script_args (`ScriptArguments`): `dataset_name` for the model card (Hub datasets only).
        tags (`list[str]`): the model card's tags.
        script (`str`): the training script, named in the model card (`sft.py`, `dpo.py`).
    """
    output_dir = trainer.args.output_dir
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True  # checkpointing turned the cache off for training only
    model.generation_config.eos_token_id = stop_token_ids(processor.tokenizer)  # `<|end|>` ends an answer
    trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(output_dir)
        model.generation_config.save_pretrained(output_dir)
        task_config.save(output_dir)
        is_qlora = save_base_quantization(output_dir, model)  # evaluation and merging load the base the same way
        is_local_dataset = os.path.exists(script_args.dataset_name)  # the card links datasets to the Hub
        trainer.create_model_card(
            model_name=os.path.basename(os.path.normpath(output_dir)),
            dataset_name=None if is_local_dataset else script_args.dataset_name,
            tags=tags,
        )
        is_adapter = (Path(output_dir) / "adapter_config.json").is_file()
        append_usage(output_dir, task_config, is_adapter, script=script, is_qlora=is_qlora)
    trainer.accelerator.print(f"Model, processor, task config and model card saved to {output_dir}")


def append_usage(
    output_dir: str, task_config: TaskConfig, is_adapter: bool, script: str = "sft.py", is_qlora: bool = False
) -> None:
    """Appends the usage section to the `README.md` that `trainer.create_model_card` wrote in `output_dir`.

    Args:
        output_dir (`str`): the training output directory.
        task_config ([`TaskConfig`]): what the model was trained for; its question goes into the example.
        is_adapter (`bool`): whether the directory holds a LoRA adapter (loaded over its base) or a full model.
        script (`str`, *optional*, defaults to `"sft.py"`): the training script.
        is_qlora (`bool`, *optional*, defaults to `False`): whether the adapter trained on a 4-bit base (QLoRA).
    """
    card = Path(output_dir) / "README.md"
    kind = "LoRA adapter (its base model loads with it)" if is_adapter else "model"
    with card.open("a") as file:
        file.write(
            USAGE.format(
                kind=kind,
                path=output_dir,
                image=image_tag(1),
                question=task_config.question,
                task=task_config.task,
                script=script,
            )
        )
        if is_qlora:
            file.write(QLORA_NOTE)
