"""The part of the model card TRL cannot write: how to load a Phi-3-V output directory and ask it about a photo."""

from pathlib import Path


USAGE = """
## Usage

A Phi-3-Vision {kind} fine-tuned with phi3v-recipes (`scripts/sft.py`). It loads with
transformers once `phi3v` is imported, which registers the model with the Auto classes (no remote code):

```python
import phi3v  # noqa: F401
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

processor = AutoProcessor.from_pretrained("{path}")
model = AutoModelForCausalLM.from_pretrained("{path}")
messages = [{{"role": "user", "content": "<|image_1|>{question}"}}]
prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
inputs = processor(prompt, [Image.open("photo.jpg")])
output = model.generate(**inputs, max_new_tokens=64, do_sample=False)  # stops on <|end|>
print(processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
```

or `python scripts/predict.py --model {path} photo.jpg`.
"""


def append_usage(output_dir: str, question: str, is_adapter: bool) -> None:
    """Appends the usage section to the `README.md` that `trainer.create_model_card` wrote in `output_dir`.

    Args:
        output_dir (`str`): the training output directory.
        question (`str`): the question the model was trained to answer.
        is_adapter (`bool`): whether the directory holds a LoRA adapter (loaded over its base) or a full model.
    """
    card = Path(output_dir) / "README.md"
    kind = "LoRA adapter (its base model loads with it)" if is_adapter else "model"
    with card.open("a") as file:
        file.write(USAGE.format(kind=kind, path=output_dir, question=question))
