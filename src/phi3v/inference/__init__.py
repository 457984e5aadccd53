"""Inference with trained Phi-3-V models: loading any output form (model, merged, LoRA adapter), what to ask each row,
batched greedy generation, predictions for image files, and merging adapters. Used by training (the W&B table),
evaluation and the scripts."""
