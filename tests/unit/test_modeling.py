"""The native Phi-3-V model: official layout, image merge, batching, caching, saving, checkpointing, attention."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v import Phi3VConfig, Phi3VForCausalLM
from phi3v.modeling.image_features import count_image_tokens, merge_2x2

from ..conftest import hub_files


def _images():
    # Different sizes give different crop grids at num_crops=4 (1x1, 1x2, 2x1, 2x2).
    return [
        Image.new("RGB", (60, 60), (200, 30, 30)),
        Image.new("RGB", (120, 60), (30, 200, 30)),
        Image.new("RGB", (50, 110), (30, 30, 200)),
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 90, 3), dtype=np.uint8)),
    ]


MIXED_TEXTS = [
    "<|user|>\n<|image_1|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n",
    "<|user|>\nA question with no image at all, longer than the others.<|end|>\n<|assistant|>\n",
    "<|user|>\n<|image_1|>\n<|image_2|>\nCompare them.<|end|>\n<|assistant|>\n",
    "<|user|>\n<|image_1|>Price?<|end|>\n<|assistant|>\n",
]


def _mixed_images():
    images = _images()
    return [[images[0]], [], [images[1], images[2]], [images[3]]]


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()
    return model, AutoProcessor.from_pretrained(tiny_checkpoint)


def test_official_configs_load_and_write_the_same_keys_back(official_files, tmp_path):
    config = AutoConfig.from_pretrained(official_files)
    assert isinstance(config, Phi3VConfig)
    assert config.rope_parameters["rope_type"] == "longrope"
    assert len(config.rope_parameters["long_factor"]) == 48
    assert config.image_dim_out == 1024 and config.vision_tower_config().image_size == 336
    # The v3 file pins flash_attention_2; loading must not require flash-attn.
    assert config._attn_implementation is None
    config.save_pretrained(tmp_path)
    original = json.loads((official_files / "config.json").read_text())
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(original) - {"_name_or_path"} <= set(saved)
    for key in ("rope_scaling", "embd_layer", "img_processor", "_attn_implementation", "rope_theta", "vocab_size"):
        assert saved[key] == original[key], key
    assert "vision_config" not in saved


def test_state_dict_keys_equal_the_official_tensor_index():
    index_path = hub_files("Phi-3-vision-128k-instruct") / "model.safetensors.index.json"
    official_keys = set(json.loads(index_path.read_text())["weight_map"])
    assert len(official_keys) == 592
    config = AutoConfig.from_pretrained(index_path.parent)
    with torch.device("meta"):
        model = Phi3VForCausalLM(config)
    assert set(model.state_dict()) == official_keys
    assert sum(p.numel() for p in model.parameters()) == 4_146_621_440


def test_merge_2x2_layout_on_hand_made_features():
    grid, dim = 4, 2
    # Feature of patch (row, col) holds (10 * row + col, -(10 * row + col)).
    values = torch.tensor([10 * (p // grid) + p % grid for p in range(grid * grid)], dtype=torch.float)
    features = torch.stack([values, -values], dim=-1)[None]
    merged = merge_2x2(features)
    assert merged.shape == (1, 2, 2, 4 * dim)
    # Cell (1, 0) concatenates patches (2,0), (2,1), (3,0), (3,1), each with its 2 channels.
    assert merged[0, 1, 0].tolist() == [20, -20, 21, -21, 30, -30, 31, -31]


def test_image_embedding_layout_sub_grid_separators_then_global(tiny):
    model, _ = tiny
    embedding = model.model.vision_embed_tokens
    g, dim = embedding.merged_grid, embedding.sub_GN.shape[-1]

    # Replace CLIP and the projector so each output token says where it came from.
    def fake_patch_features(crops, layer):
        # crop k's merged cells all carry value k in every channel.
        n = crops.shape[0]
        return crops[:, 0, 0, 0].reshape(n, 1, 1).expand(n, (2 * g) ** 2, dim // 4).clone()

    original_features = embedding.img_processor.vision_model.patch_features
    original_projection = embedding.img_projection
    embedding.img_processor.vision_model.patch_features = fake_patch_features
    identity = torch.nn.Linear(dim, dim)
    torch.nn.init.eye_(identity.weight)
    torch.nn.init.zeros_(identity.bias)
    embedding.img_projection = torch.nn.Sequential(identity)
    try:
        rows, cols, size = 1, 2, embedding.crop_size
        pixel_values = torch.full((1, 5, 3, size, size), 99.0)  # padding crops hold garbage: never read
        for k in range(1 + rows * cols):
            pixel_values[0, k] = k
        with torch.no_grad():
            tokens = embedding(pixel_values, torch.tensor([[rows * size, cols * size]]))[:, 0]
            sub_gn, glb_gn = embedding.sub_GN.flatten()[0].item(), embedding.glb_GN.flatten()[0].item()
    finally:
        embedding.img_processor.vision_model.patch_features = original_features
        embedding.img_projection = original_projection
    sub_row = [1.0] * g + [2.0] * g + [sub_gn]  # crop 1 then crop 2 side by side, then the separator
    global_row = [0.0] * g + [sub_gn]
    expected = sub_row * g + [glb_gn] + global_row * g
    assert tokens.tolist() == pytest.approx(expected)
    assert len(expected) == count_image_tokens(rows * size, cols * size, size, g)


def test_padding_crops_never_run_through_clip(tiny):
    model, processor = tiny
    inputs = processor(MIXED_TEXTS[0], [_images()[1]])  # 1x2 crops: global + 2 crops real, 2 zero crops
    seen = []
    hook = model.model.vision_embed_tokens.img_processor.vision_model.embeddings.register_forward_hook(
        lambda module, args, output: seen.append(args[0].shape[0])
    )
    with torch.no_grad():
        logits = model(**inputs).logits
        garbage = dict(inputs, pixel_values=inputs["pixel_values"].clone())
        garbage["pixel_values"][:, 3:] = 1e4
        logits_with_garbage = model(**garbage).logits
    hook.remove()
    assert seen == [3, 3]
    assert torch.equal(logits, logits_with_garbage)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_mixed_batch_gives_each_sample_its_single_logits(tiny, padding_side):
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side=padding_side)
    with torch.no_grad():
        batch_logits = model(**batch).logits
    for row, (text, images) in enumerate(zip(MIXED_TEXTS, _mixed_images(), strict=True)):
        single = processor(text, images or None)
        with torch.no_grad():
            single_logits = model(**single).logits[0]
        real = batch["attention_mask"][row].bool()
        torch.testing.assert_close(batch_logits[row][real], single_logits, atol=1e-5, rtol=1e-4)


def test_input_ids_are_never_modified(tiny):
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images())
    before = batch["input_ids"].clone()
    labels = batch["input_ids"].clone()
    with torch.no_grad():
        out = model(**batch, labels=labels)
    assert torch.equal(batch["input_ids"], before) and torch.equal(labels, before)
    assert torch.isfinite(out.loss)  # negative placeholder ids in labels are ignored, not a crash


def test_cached_generation_equals_uncached(tiny):
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side="left")
    kwargs = dict(max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=processor.tokenizer.pad_token_id)
    cached = model.generate(**batch, use_cache=True, **kwargs)
    uncached = model.generate(**batch, use_cache=False, **kwargs)
    assert cached.shape[1] == batch["input_ids"].shape[1] + 8
    assert torch.equal(cached, uncached)


def test_generation_config_stops_on_end_and_endoftext(tiny):
    model, processor = tiny
    tokenizer = processor.tokenizer
    expected = {tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    assert set(model.generation_config.eos_token_id) == expected


def test_save_then_load_round_trips_bit_exactly(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    original_state, reloaded_state = model.state_dict(), reloaded.state_dict()
    assert set(original_state) == set(reloaded_state)
    for key, value in original_state.items():
        assert torch.equal(value, reloaded_state[key]), key
    # On disk: the official tensor names (vision tower under img_processor.vision_model), no extra keys.
    saved_keys = set(load_file(tmp_path / "model.safetensors"))
    assert saved_keys == set(original_state)
    assert any(k.startswith("model.vision_embed_tokens.img_processor.vision_model.encoder") for k in saved_keys)
    batch = processor(MIXED_TEXTS, _mixed_images())
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**batch).logits)


def _gradients(model, batch):
    model.zero_grad()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients(tiny_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).train()
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    batch = processor(MIXED_TEXTS, _mixed_images())
    reference = _gradients(model, batch)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = _gradients(model, batch)
    assert set(reference) == set(checkpointed)
    assert any("img_processor" in name for name in reference)  # gradients reach the vision tower
    for name, grad in reference.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_unused_clip_layers_can_be_frozen(tiny_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    model.freeze_unused_vision_parameters()
    grads = _gradients(model.train(), processor(MIXED_TEXTS, _mixed_images()))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # Every trainable parameter gets a gradient (DDP needs no find_unused_parameters); the frozen ones are unused.
    assert trainable == set(grads)
    assert not any("post_layernorm" in n or "encoder.layers.1." in n for n in trainable)


def test_sdpa_equals_eager(tiny_checkpoint):
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side="left")
    logits = {}
    for implementation in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, attn_implementation=implementation).eval()
        assert model.config._attn_implementation == implementation
        tower = model.model.vision_embed_tokens.img_processor.vision_model
        assert tower.config._attn_implementation == implementation
        with torch.no_grad():
            logits[implementation] = model(**batch).logits
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(logits["sdpa"][mask], logits["eager"][mask], atol=1e-5, rtol=1e-4)


def test_bfloat16_forward_and_generate(tiny_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.bfloat16).eval()
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side="left")
    assert model.model.vision_embed_tokens.img_processor.vision_model.embeddings.patch_embedding.weight.dtype == (
        torch.bfloat16
    )
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == len(MIXED_TEXTS)


def test_placeholder_and_image_count_mismatch_is_a_clear_error(tiny):
    model, processor = tiny
    batch = processor(MIXED_TEXTS[0], [_images()[0]])
    bad = dict(batch, input_ids=batch["input_ids"][:, 5:], attention_mask=batch["attention_mask"][:, 5:])
    with pytest.raises(ValueError, match="image placeholder tokens"):
        model(**bad)


def test_inputs_embeds_with_images_merge_them_at_the_placeholders_of_input_ids(tiny):
    # As llava's merge: the image features replace the given embeddings where `input_ids` holds placeholders.
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images())
    with torch.no_grad():
        expected = model(**batch).logits
        embeddings = model.get_input_embeddings()(batch["input_ids"].clamp(min=0))
        merged = model(**batch, inputs_embeds=embeddings).logits
        text_only = model(inputs_embeds=embeddings, attention_mask=batch["attention_mask"]).logits
    assert torch.equal(merged, expected)
    assert not torch.allclose(text_only, expected)  # the images change the logits, so none were dropped


def test_inputs_embeds_with_images_but_no_input_ids_are_refused(tiny):
    # A placeholder is a negative id, which no embedding identifies: without `input_ids` the images have no place.
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side="left")
    embeddings = model.get_input_embeddings()(batch["input_ids"].clamp(min=0))
    images = {"pixel_values": batch["pixel_values"], "image_sizes": batch["image_sizes"]}
    with pytest.raises(ValueError, match="needs the `input_ids` they embed"):
        model(inputs_embeds=embeddings, attention_mask=batch["attention_mask"], **images)
    with pytest.raises(ValueError, match="needs the `input_ids` they embed"):
        model(input_ids=batch["input_ids"][:, 1:], inputs_embeds=embeddings, **images)
    # `generate` hands the first forward `inputs_embeds` without `input_ids`, so it is refused there too.
    with pytest.raises(ValueError, match="needs the `input_ids` they embed"):
        model.generate(inputs_embeds=embeddings, attention_mask=batch["attention_mask"], **images, max_new_tokens=2)


def test_backbone_call_merges_images_as_trl_fused_head_needs(tiny_checkpoint):
    # TRL's DPO runs `model.base_model(...)` then its own LM head; the images must be merged in the backbone.
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side="left")
    labels = (
        batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100).masked_fill(batch["input_ids"] < 0, -100)
    )
    with torch.no_grad():
        logits = model(**batch).logits
        add_fused_lm_head(model)
        fused = model(**batch, labels=labels, fused_lm_head=True).log_probs
    expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1))[..., 0]
    scored = labels[:, 1:] != -100
    torch.testing.assert_close(fused[scored], expected[scored], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_positions", [100, 5000])
def test_longrope_matches_the_reference_formula(num_positions):
    # Spec §3: inv_freq = 1 / (ext * 10000^(2i/96)), ext = long factors once max(position) + 1 > 4096, and cos/sin
    # scaled by sqrt(1 + ln(131072 / 4096) / ln(4096)) for short and long contexts alike.
    from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

    config = AutoConfig.from_pretrained(hub_files("Phi-3-vision-128k-instruct"))
    rotary = Phi3RotaryEmbedding(config)
    position_ids = torch.arange(num_positions)[None]
    cos, sin = rotary(torch.zeros(1, dtype=torch.float32), position_ids)
    factors = config.rope_parameters["long_factor" if num_positions > 4096 else "short_factor"]
    inv_freq = 1.0 / (torch.tensor(factors) * 10000.0 ** (torch.arange(0, 96, 2).float() / 96))
    freqs = position_ids[0, :, None].float() * inv_freq
    scale = (1 + torch.log(torch.tensor(32.0)) / torch.log(torch.tensor(4096.0))).sqrt()
    torch.testing.assert_close(cos[0], torch.cat([freqs, freqs], -1).cos() * scale, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sin[0], torch.cat([freqs, freqs], -1).sin() * scale, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_passes_images_to_the_first_forward_only_when_caching(tiny, use_cache):
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images(), padding_side="left")
    seen = []
    hook = model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(
            (kwargs.get("pixel_values") is not None, kwargs["input_ids"].shape[1])
        ),
        with_kwargs=True,
    )
    try:
        model.generate(**batch, max_new_tokens=3, do_sample=False, eos_token_id=None, use_cache=use_cache)
    finally:
        hook.remove()
    prompt_length = batch["input_ids"].shape[1]
    if use_cache:
        assert seen == [(True, prompt_length), (False, 1), (False, 1)]
    else:
        assert seen == [(True, prompt_length), (True, prompt_length + 1), (True, prompt_length + 2)]


def test_llava_style_image_features_and_placeholder_mask(tiny):
    model, processor = tiny
    batch = processor(MIXED_TEXTS, _mixed_images())
    with torch.no_grad():
        features = model.get_image_features(batch["pixel_values"], batch["image_sizes"])
        mask = model.model.get_placeholder_mask(batch["input_ids"], features)
    assert features.shape == ((batch["input_ids"] < 0).sum().item(), model.config.hidden_size)
    assert torch.equal(mask[..., 0], batch["input_ids"] < 0)
    with pytest.raises(ValueError, match="image placeholder tokens"):
        model.model.get_placeholder_mask(batch["input_ids"], features[1:])


@pytest.mark.parametrize("size", [(4000, 2), (2, 4000), (30000, 10)])
def test_extreme_aspect_ratio_images_run_through_the_model(tiny, size):
    model, processor = tiny
    batch = processor(MIXED_TEXTS[0], [Image.new("RGB", size, (90, 20, 200))])
    assert (batch["input_ids"] == -1).sum().item() == processor.image_processor.num_image_tokens(*size)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
