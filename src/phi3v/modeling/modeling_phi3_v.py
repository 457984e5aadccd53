"""Phi-3-Vision: transformers' `Phi3Model` for text plus a CLIP vision tower whose features replace image placeholders.

The module tree reproduces the parameter names of the official checkpoints exactly, so
`microsoft/Phi-3-vision-128k-instruct` and `microsoft/Phi-3.5-vision-instruct` load unchanged:

    Phi3VForCausalLM
    ├── model: Phi3VModel (Phi3Model: embed_tokens, layers, norm)
    │   └── vision_embed_tokens: Phi3VImageEmbedding
    │       ├── img_processor.vision_model: CLIPVisionModel
    │       ├── glb_GN, sub_GN: learnable separators
    │       └── img_projection: Linear → GELU → Linear
    └── lm_head
"""

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, GenerationMixin, initialization
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.phi3.modeling_phi3 import Phi3Model, Phi3PreTrainedModel
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_phi3_v import Phi3VConfig
from .image_features import crop_grid, merge_2x2


class Phi3VCLIPVisionModel(CLIPVisionModel):
    """transformers' `CLIPVisionModel`, plus a forward that stops at the layer Phi-3-V reads.

    Phi-3-V uses the hidden state of the second-to-last layer; running the last layer and `post_layernorm` would be
    wasted compute and would leave parameters without gradients (which breaks DDP with an unfrozen tower).
    """

    def patch_features(self, pixel_values: torch.Tensor, feature_layer: int) -> torch.Tensor:
        """Returns the patch features (CLS dropped) of the hidden state `feature_layer` (negative: from the end).

        Args:
            pixel_values (`torch.Tensor` of shape `(num_crops, 3, crop_size, crop_size)`): normalised crops.
            feature_layer (`int`): index into CLIP's `hidden_states` tuple (0 = embeddings, -2 = second-to-last).
        """
        num_layers = len(self.encoder.layers)
        layers_to_run = feature_layer % (num_layers + 1)
        hidden_states = self.embeddings(pixel_values.to(self.embeddings.patch_embedding.weight.dtype))
        hidden_states = self.pre_layrnorm(hidden_states)
        for encoder_layer in self.encoder.layers[:layers_to_run]:
            hidden_states = encoder_layer(hidden_states, None)
        return hidden_states[:, 1:]

    def unused_parameters(self, feature_layer: int) -> list[nn.Parameter]:
        """The parameters `patch_features` never touches: later encoder layers and `post_layernorm`."""
        num_layers = len(self.encoder.layers)
        layers_to_run = feature_layer % (num_layers + 1)
        unused = list(self.post_layernorm.parameters())
        for layer in self.encoder.layers[layers_to_run:]:
            unused.extend(layer.parameters())
        return unused


class Phi3VVisionTower(nn.Module):
    """Holds the CLIP model under the name `vision_model`, as the official checkpoints do."""

    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.vision_model = Phi3VCLIPVisionModel(config)


class Phi3VImageEmbedding(nn.Module):
    """Turns HD crops into Phi-3 embeddings: CLIP features, 2x2 merge, separators, projector (sub_glb order)."""

    def __init__(self, config: Phi3VConfig):
        super().__init__()
        vision_config = config.vision_tower_config()
        # CLIP runs with the same attention implementation as the language model (sdpa, eager or flash).
        vision_config._attn_implementation = config._attn_implementation
        self.feature_layer = config.image_feature_layer
        self.crop_size = vision_config.image_size
        self.merged_grid = vision_config.image_size // vision_config.patch_size // 2
        merged_dim = 4 * vision_config.hidden_size
        self.img_processor = Phi3VVisionTower(vision_config)
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, merged_dim))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, merged_dim))
        self.img_projection = nn.Sequential(
            nn.Linear(merged_dim, config.hidden_size), nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size)
        )

    def forward(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """Projected image features of all images, concatenated in order.

        Args:
            pixel_values (`torch.Tensor` of shape `(num_images, num_crops + 1, 3, crop_size, crop_size)`):
                global view first, then the row-major crops, then zero padding.
            image_sizes (`torch.Tensor` of shape `(num_images, 2)`): padded HD size (height, width) per image.

        Returns:
            `torch.Tensor` of shape `(total_image_tokens, hidden_size)`.
        """
        grids = [crop_grid(int(h), int(w), self.crop_size) for h, w in image_sizes.tolist()]
        # Only the global view and the real crops go through CLIP; the zero-padding crops are never read.
        crops = torch.cat([pixel_values[i, : 1 + rows * cols] for i, (rows, cols) in enumerate(grids)])
        features = self.img_processor.vision_model.patch_features(crops, self.feature_layer)
        merged = merge_2x2(features)  # (num_real_crops, g, g, 4 * D)

        sub_gn = self.sub_GN.to(merged.dtype)[0]  # (1, 1, 4 * D)
        glb_gn = self.glb_GN.to(merged.dtype)[0]  # (1, 4 * D)
        g = self.merged_grid
        image_tokens, start = [], 0
        for rows, cols in grids:
            global_view, sub_crops = merged[start], merged[start + 1 : start + 1 + rows * cols]
            start += 1 + rows * cols
            # Stitch the crops row-major into one (rows*g, cols*g) grid, then end every row with `sub_GN`.
            sub_grid = sub_crops.reshape(rows, cols, g, g, -1).permute(0, 2, 1, 3, 4).reshape(rows * g, cols * g, -1)
            sub_grid = torch.cat([sub_grid, sub_gn.expand(rows * g, 1, -1)], dim=1).flatten(0, 1)
            global_grid = torch.cat([global_view, sub_gn.expand(g, 1, -1)], dim=1).flatten(0, 1)
            image_tokens.append(torch.cat([sub_grid, glb_gn, global_grid]))
        image_tokens = torch.cat(image_tokens)
        # The bias, as the official code reads: a 4-bit (QLoRA) weight is stored as uint8, its bias is not.
        projection_dtype = self.img_projection[0].bias.dtype
        return self.img_projection(image_tokens.to(projection_dtype))


class Phi3VPreTrainedModel(Phi3PreTrainedModel):
    config: Phi3VConfig
    # FSDP and `device_map` keep these whole: the Phi-3 decoder layer and the CLIP encoder layer.
    _no_split_modules = ["Phi3DecoderLayer", "CLIPEncoderLayer"]
    # Fine-tuned community checkpoints sometimes store the shared embedding a second time under this name.
    _keys_to_ignore_on_load_unexpected = [r"model\.vision_embed_tokens\.wte\.weight"]
    _can_compile_fullgraph = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, Phi3VImageEmbedding):
            initialization.normal_(module.glb_GN, std=self.config.initializer_range)
            initialization.normal_(module.sub_GN, std=self.config.initializer_range)


class Phi3VModel(Phi3VPreTrainedModel, Phi3Model):
    """`Phi3Model` whose input embeddings carry image features at the image placeholder positions."""

    def __init__(self, config: Phi3VConfig):
        super().__init__(config)
        self.vision_embed_tokens = Phi3VImageEmbedding(config)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """Projected features of all images, concatenated in order: `(total_image_tokens, hidden_size)`.

        Args:
            pixel_values (`torch.Tensor` of shape `(num_images, num_crops + 1, 3, crop_size, crop_size)`): the crops.
            image_sizes (`torch.Tensor` of shape `(num_images, 2)`): padded HD size (height, width) per image.
        """
        return self.vision_embed_tokens(pixel_values, image_sizes)

    def get_placeholder_mask(self, input_ids: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Image placeholder positions (negative ids) as a `(batch, length, 1)` mask, checked against the features."""
        image_positions = input_ids < 0
        if image_features.shape[0] != image_positions.sum():
            raise ValueError(
                f"The prompts hold {int(image_positions.sum())} image placeholder tokens but the images give "
                f"{image_features.shape[0]} features; `pixel_values`/`image_sizes` do not match `input_ids`."
            )
        return image_positions.unsqueeze(-1)

    def embed_inputs(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None, image_sizes: torch.Tensor | None
    ) -> torch.Tensor:
        """Text embeddings with the projected image features written into the placeholder positions.

        Image placeholders are negative ids (`-k` for the k-th image of a sample, as the official processor writes
        them). Features are consumed in order of appearance over the flattened batch, so `pixel_values` must list the
        images of sample 0, then sample 1, and so on. `input_ids` is never modified.
        """
        inputs_embeds = self.embed_tokens(input_ids.clamp(min=0))
        # Cached generation steps after the first hold no placeholder (and GenerationMixin drops `pixel_values`).
        if pixel_values is None or not (input_ids < 0).any():
            return inputs_embeds
        return self.merge_image_features(inputs_embeds, input_ids, pixel_values, image_sizes)

    def merge_image_features(
        self,
        inputs_embeds: torch.Tensor,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        image_sizes: torch.Tensor | None,
    ) -> torch.Tensor:
        """`inputs_embeds` with the projected image features written into the placeholder positions of `input_ids`.

        Args:
            inputs_embeds (`torch.Tensor` of shape `(batch_size, sequence_length, hidden_size)`): the embeddings.
            input_ids (`torch.Tensor` of shape `(batch_size, sequence_length)`): the ids they embed; its negative ids
                mark where the image features go.
            pixel_values (`torch.Tensor` of shape `(num_images, num_crops + 1, 3, crop_size, crop_size)`): the crops.
            image_sizes (`torch.Tensor` of shape `(num_images, 2)`): padded HD size (height, width) per image.
        """
        image_features = self.get_image_features(pixel_values, image_sizes)
        image_mask = self.get_placeholder_mask(input_ids, image_features)
        return inputs_embeds.masked_scatter(image_mask, image_features.to(inputs_embeds.dtype))

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        image_sizes: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Runs the decoder on text embeddings with image features merged in (see [`Phi3VForCausalLM.forward`]).

        The merge happens here, in the base model, so code that calls the backbone directly (TRL's fused LM head in
        DPO, PEFT wrappers) sees the images too. Given `inputs_embeds` and `pixel_values`, the image features replace
        the embeddings at the placeholder positions of `input_ids`, as llava's merge does; without `input_ids` the call
        is refused, since no embedding marks a Phi-3-V placeholder (they are negative ids, outside the vocabulary).
        """
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, image_sizes)
        elif pixel_values is not None:
            if input_ids is None or input_ids.shape != inputs_embeds.shape[:2]:
                raise ValueError(
                    "`inputs_embeds` with `pixel_values` needs the `input_ids` they embed, of the same batch size and "
                    "length: Phi-3-V's image placeholders are negative ids, which no embedding identifies, so only "
                    "`input_ids` says where the image features go. Pass `input_ids` with `inputs_embeds`, or "
                    "`input_ids` alone."
                )
            inputs_embeds = self.merge_image_features(inputs_embeds, input_ids, pixel_values, image_sizes)
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            # Positions count real tokens only, so a left-padded sample gets the positions it has alone.
            positions = attention_mask.long().cumsum(-1) - 1
            position_ids = positions.clamp(min=0)[:, -inputs_embeds.shape[1] :]
        return super().forward(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )


class Phi3VForCausalLM(Phi3VPreTrainedModel, GenerationMixin):
    """Phi-3-Vision for generation and training. Accepts batches in which samples hold any number of images.

    In `generate`, transformers' own `prepare_inputs_for_generation` passes `pixel_values` and `image_sizes` to the
    first forward only when a cache is used (they are in its `MULTIMODAL_INPUTS_TO_DROP_OUTSIDE_PREFILL`), and to
    every forward without a cache, so this class needs no override of its own.

    Args:
        config ([`Phi3VConfig`]): the model configuration.
    """

    def __init__(self, config: Phi3VConfig):
        super().__init__(config)
        self.model = Phi3VModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """Projected features of all images (see [`Phi3VModel.get_image_features`])."""
        return self.model.get_image_features(pixel_values, image_sizes)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        image_sizes: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                token ids; image placeholders are negative (`-k` repeated for the k-th image of the sample).
            pixel_values (`torch.FloatTensor` of shape `(num_images, num_crops + 1, 3, crop_size, crop_size)`):
                the images of the whole batch, in the order their placeholders appear.
            image_sizes (`torch.LongTensor` of shape `(num_images, 2)`): padded HD (height, width) of each image.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`, *optional*):
                embeddings to use instead of those of `input_ids`. With `pixel_values`, `input_ids` must be given too:
                the image features replace the embeddings at its placeholder positions.
            attention_mask (`torch.Tensor` of shape `(batch_size, past + sequence_length)`): 1 for real tokens.
                Position ids follow from it, so left-padded batches give each sample the positions it has alone.
            labels (`torch.LongTensor`, *optional*): targets for the causal LM loss; -100 and any negative id
                (an image placeholder) are ignored.
        """
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            image_sizes=image_sizes,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])

        loss = None
        if labels is not None:
            labels = labels.masked_fill(labels < 0, -100)
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def freeze_unused_vision_parameters(self) -> None:
        """Marks the CLIP layers Phi-3-V never runs as frozen, so optimisers and DDP ignore them."""
        tower = self.model.vision_embed_tokens.img_processor.vision_model
        for parameter in tower.unused_parameters(self.config.image_feature_layer):
            parameter.requires_grad_(False)
