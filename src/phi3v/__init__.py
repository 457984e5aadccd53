"""Phi-3-Vision fine-tuning recipes: native model, data preparation, training and evaluation.

Importing `phi3v` registers the `phi3_v` model type with transformers' Auto classes, so the official checkpoints (and
everything this project saves) load with `AutoConfig`, `AutoModelForCausalLM`, `AutoModelForImageTextToText`,
`AutoImageProcessor` and `AutoProcessor` without `trust_remote_code`, and `pipeline("image-text-to-text")` runs them.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from .modeling import Phi3VConfig, Phi3VForCausalLM, Phi3VImageProcessor, Phi3VModel, Phi3VProcessor


AutoConfig.register("phi3_v", Phi3VConfig)
AutoModelForCausalLM.register(Phi3VConfig, Phi3VForCausalLM)
AutoModelForImageTextToText.register(Phi3VConfig, Phi3VForCausalLM)
AutoImageProcessor.register(Phi3VConfig, image_processor_classes={"pil": Phi3VImageProcessor})
AutoProcessor.register(Phi3VConfig, Phi3VProcessor)

__all__ = ["Phi3VConfig", "Phi3VForCausalLM", "Phi3VImageProcessor", "Phi3VModel", "Phi3VProcessor"]
