"""Configuration of Phi-3-Vision: the Phi-3 text config plus the image-embedding fields of the official checkpoints."""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig, Phi3Config


# The vision tower of both official checkpoints is CLIP ViT-L/14 at 336 px. Their config.json does not say so (the
# remote code hard-codes it), so these are the defaults; `vision_config` overrides them (tiny test models).
CLIP_VIT_L_14_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "num_channels": 3,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "attention_dropout": 0.0,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
}
DEFAULT_EMBD_LAYER = {
    "embedding_cls": "image",
    "hd_transform_order": "sub_glb",
    "projection_cls": "mlp",
    "use_hd_transform": True,
    "with_learnable_separator": True,
}
DEFAULT_IMG_PROCESSOR = {
    "image_dim_out": 1024,
    "model_name": "openai/clip-vit-large-patch14-336",
    "name": "clip_vision_model",
    "num_img_tokens": 144,
}


@strict
class Phi3VConfig(Phi3Config):
    r"""Configuration of [`Phi3VForCausalLM`].

    Reads the official `config.json` of `microsoft/Phi-3-vision-128k-instruct` and `microsoft/Phi-3.5-vision-instruct`
    unchanged (`rope_scaling` of type `su`, `embd_layer`, `img_processor`, `_attn_implementation`) and writes the same
    keys back, so checkpoints we save load in the reference code and in vLLM.

    Args:
        embd_layer (`dict`, *optional*):
            The image-embedding options of the official config. Only the values of the official checkpoints
            (HD transform, learnable separators, `sub_glb` order, MLP projector) are supported.
        img_processor (`dict`, *optional*):
            The vision-tower description of the official config (`image_dim_out`, `num_img_tokens`, ...).
        vision_config (`dict`, *optional*):
            Overrides of the CLIP vision tower (defaults: ViT-L/14 at 336 px). Only tiny test models set it; it is
            saved only when given.
        image_feature_layer (`int`, *optional*, defaults to -2):
            Which CLIP hidden state feeds the projector (the official code's `layer_idx`).
    """

    model_type = "phi3_v"

    embd_layer: dict | None = None
    img_processor: dict | None = None
    vision_config: dict | None = None
    image_feature_layer: int = -2

    def __post_init__(self, **kwargs):
        # The official files say `"type": "su"`; transformers' longrope is the same rotation ("su" was its old name).
        rope_scaling = kwargs.get("rope_scaling")
        if rope_scaling is not None and rope_scaling.get("type") in ("su", "longrope"):
            # `factor` is the 128k/4k ratio the reference derives the attention scaling from; stating it keeps
            # transformers from warning on every load.
            kwargs["rope_scaling"] = {
                "rope_type": "longrope",
                "short_factor": list(rope_scaling["short_factor"]),
                "long_factor": list(rope_scaling["long_factor"]),
                "factor": self.max_position_embeddings / self.original_max_position_embeddings,
            }
        # The v3 file pins flash_attention_2; we keep it only to write it back. Loading picks sdpa unless the caller
        # asks for another implementation, so nobody needs flash-attn to load the model.
        self.saved_attn_implementation = kwargs.pop("_attn_implementation", None)
        if self.embd_layer is None:
            self.embd_layer = dict(DEFAULT_EMBD_LAYER)
        if self.img_processor is None:
            self.img_processor = dict(DEFAULT_IMG_PROCESSOR)
        super().__post_init__(**kwargs)
        unsupported = {k: v for k, v in DEFAULT_EMBD_LAYER.items() if k in self.embd_layer and self.embd_layer[k] != v}
        if unsupported:
            raise ValueError(
                f"Unsupported Phi-3-V `embd_layer` options {unsupported}; supported: {DEFAULT_EMBD_LAYER}"
            )

    def vision_tower_config(self) -> CLIPVisionConfig:
        """Returns the CLIP vision-tower config: ViT-L/14-336 unless `vision_config` overrides it."""
        return CLIPVisionConfig(**{**CLIP_VIT_L_14_336, **(self.vision_config or {})})

    @property
    def image_dim_out(self) -> int:
        """Width of one CLIP patch feature (1024 for ViT-L)."""
        return self.vision_tower_config().hidden_size

    def to_dict(self) -> dict[str, Any]:
        # Write the Hub's key names back (`rope_scaling` with type "su", top-level `rope_theta`, `torch_dtype`), so
        # our output loads in the reference remote code and vLLM, not only in transformers 5.
        output = super().to_dict()
        rope = output.pop("rope_parameters", None) or {}
        output["rope_theta"] = rope.get("rope_theta", 10000.0)
        if rope.get("rope_type") == "longrope":
            output["rope_scaling"] = {
                "long_factor": rope["long_factor"],
                "short_factor": rope["short_factor"],
                "type": "su",
            }
        else:
            output["rope_scaling"] = None
        if output.get("vision_config") is None:
            output.pop("vision_config", None)
        if output.get("image_feature_layer") == -2:
            output.pop("image_feature_layer")
        saved_attn = output.pop("saved_attn_implementation", None)
        if saved_attn is not None:
            output["_attn_implementation"] = saved_attn
        if "dtype" in output:
            output["torch_dtype"] = output.pop("dtype")
        return output
