"""Phi-3-Vision fine-tuning recipes: native model, data preparation, training and evaluation."""
