"""A tiny random Phi-3-V checkpoint in the official on-disk layout: the embedded default of the demo and the tests.

The tokenizer is trained here (byte-level fallback BPE, Llama-style normalisation) and carries every Phi-3 special token
the project relies on, so code paths that look tokens up by name (`<|end|>`, `<|endoftext|>`, `<|user|>`) are the same
as with the real 32k tokenizer. Nothing is downloaded.
"""

import json
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import GenerationConfig, PreTrainedTokenizerFast

from phi3v.outputs import user_entries

from .chat_format import CHAT_TEMPLATE, stop_token_ids
from .configuration_phi3_v import Phi3VConfig
from .image_processing_phi3_v import Phi3VImageProcessor
from .modeling_phi3_v import Phi3VForCausalLM
from .processing_phi3_v import Phi3VProcessor


SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
ADDED_TOKENS = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>", "<|image|>"]
RSTRIP_TOKENS = {"<|assistant|>"}
# Words the synthetic catalogue and the prompts use, so the tiny tokenizer gives them short token sequences.
CORPUS = """What is shown in this image? Product: Category: Full Price: Describe the product.
Black Navy Red Camel Beige Green White Grey Pink Blue Brown Burgundy Check Striped Dotted Plain Quilted Monogram
Leather Wool Cashmere Cotton Silk Canvas Suede Small Medium Large Mini Tote Bag Bags Crossbody Scarf Scarves Coat
Coats Trench Jacket Shoes Sneakers Boots Loafers Hat Hats Cap Bucket Wallet Wallets Belt Belts Card Case N.A.
WOMEN MEN KIDS ACCESSORIES OUTERWEAR SHOES BAGS SCARVES COATS HATS SNEAKERS TOTE 0 1 2 3 4 5 6 7 8 9 , . $ : - ( ) /"""


def build_tiny_tokenizer(vocab_size: int = 640) -> PreTrainedTokenizerFast:
    """Trains a small Llama-style BPE tokenizer with Phi-3's special tokens and the official chat template.

    Args:
        vocab_size (`int`, *optional*, defaults to 640): size of the trained BPE vocabulary (characters and merges);
            the 256 byte-fallback tokens and Phi-3's added tokens come on top.
    """
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    trained = Tokenizer(BPE(unk_token="<unk>"))
    trained.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trained.train_from_iterator(CORPUS.splitlines() * 8, trainer=trainer)
    trained_model = json.loads(trained.to_str())["model"]
    # Byte-fallback tokens are ordinary vocabulary at ids 3-258, as in Llama's and Phi-3's tokenizers: registered as
    # special tokens, `skip_special_tokens` would drop every character that falls back to bytes.
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + [f"<0x{b:02X}>" for b in range(256)])}
    for token, _ in sorted(trained_model["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [
        tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in trained_model["merges"]
    ]
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = trained.normalizer
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    # As in Phi-3's tokenizer.json, `<|assistant|>` swallows the whitespace after it (rstrip); the others keep it.
    tokenizer.add_special_tokens(
        [AddedToken(t, rstrip=t in RSTRIP_TOKENS, normalized=False, special=True) for t in ADDED_TOKENS]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=["<|system|>", "<|end|>", "<|user|>"],
        chat_template=CHAT_TEMPLATE,
        padding_side="right",
        model_max_length=131072,
    )


def tiny_config(vocab_size: int, tokenizer: PreTrainedTokenizerFast) -> Phi3VConfig:
    """A 2-layer, 64-wide Phi-3-V with a 2-layer CLIP tower on 56 px crops (4 tokens per crop)."""
    head_dim = 16
    return Phi3VConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_scaling={"type": "su", "short_factor": [1.0] * (head_dim // 2), "long_factor": [4.0] * (head_dim // 2)},
        sliding_window=131072,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|end|>"),
        pad_token_id=tokenizer.pad_token_id,
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 56,
            "patch_size": 14,
        },
        img_processor={
            "image_dim_out": 64,
            "model_name": "tiny-clip",
            "name": "clip_vision_model",
            "num_img_tokens": 4,
        },
        dtype="float32",
    )


def make_tiny_checkpoint(output_dir: str | Path, num_crops: int = 4, seed: int = 0) -> Path:
    """Writes a tiny random Phi-3-V checkpoint (config, safetensors, tokenizer, preprocessor, generation config).

    Args:
        output_dir (`str` or `Path`): where to write; must not exist or be empty.
        num_crops (`int`, *optional*, defaults to 4): the image processor's default number of HD crops.
        seed (`int`, *optional*, defaults to 0): seed of the random weights.
    """
    output_dir = Path(output_dir)
    if user_entries(output_dir):  # empty but for this project's marker
        raise FileExistsError(f"{output_dir} is not empty; refusing to overwrite it")
    tokenizer = build_tiny_tokenizer()
    vocab_size = (len(tokenizer) + 63) // 64 * 64  # padded like Phi-3's 32064
    config = tiny_config(vocab_size, tokenizer)
    torch.manual_seed(seed)
    model = Phi3VForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_token_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    image_processor = Phi3VImageProcessor(num_crops=num_crops, crop_size=56, patch_size=14, num_img_tokens=4)
    processor = Phi3VProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(
        "# Tiny random Phi-3-V\n\nRandom weights in the official Phi-3-Vision layout, written by "
        "`scripts/make_tiny_model.py` for the demo and tests. It knows nothing.\n"
    )
    json.loads((output_dir / "config.json").read_text())  # fail here, not later, if the config did not serialise
    return output_dir
