"""TRL's `DPOTrainer` whose evaluations also score generated answers, so checkpoints can be chosen by them."""

from trl import DPOTrainer

from .generation_validation import GeneratedAnswersEvaluation


class Phi3VDPOTrainer(GeneratedAnswersEvaluation, DPOTrainer):
    r"""
    A `DPOTrainer` that adds the task's generation metrics to each evaluation on the validation pairs.

    Each evaluation logs TRL's held-out preference metrics (`eval_rewards/accuracies`, `eval_rewards/margins`, ...)
    and, with `generation_validation`, the metrics of the model's greedy answers on a fixed sample of validation items
    (`eval_price_mape`, `eval_category_accuracy`, ... for the catalogue; `eval_exact_match` otherwise): see
    [`GeneratedAnswersEvaluation`], which GRPO shares. With `eval_on_start`, the first evaluation scores the unchanged
    SFT model: the bar the DPO checkpoints have to clear (`phi3v.training.selection`).

    Args:
        *args, **kwargs: as for `trl.DPOTrainer`.
        generation_validation ([`GenerationValidation`], *optional*): scores generated answers at each evaluation.
    """
