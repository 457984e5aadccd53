"""TRL's `DPOTrainer` whose evaluations also score generated answers, so checkpoints can be chosen by them."""

from trl import DPOTrainer

from .generation_validation import GenerationValidation


class Phi3VDPOTrainer(DPOTrainer):
    r"""
    A `DPOTrainer` that adds the task's generation metrics to each evaluation on the validation pairs.

    Each evaluation logs TRL's held-out preference metrics (`eval_rewards/accuracies`, `eval_rewards/margins`, ...)
    and, with `generation_validation`, the metrics of the model's greedy answers on a fixed sample of validation items
    (`eval_price_mape`, `eval_category_accuracy`, ... for the catalogue; `eval_exact_match` otherwise). They reach the
    console, `trainer_state.json`'s `log_history` and W&B together, and `evaluate()` returns them, so
    `metric_for_best_model` can name one and `load_best_model_at_end` restores the best checkpoint by it. With
    `eval_on_start`, the first evaluation scores the unchanged SFT model: the bar the DPO checkpoints have to clear
    (`phi3v.training.selection`).

    Args:
        *args, **kwargs: as for `trl.DPOTrainer`.
        generation_validation ([`GenerationValidation`], *optional*): scores generated answers at each evaluation.
    """

    def __init__(self, *args, generation_validation: GenerationValidation | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.generation_validation = generation_validation

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ):
        # Added here rather than after `evaluate()`: `Trainer.evaluate` logs and returns the metrics of this loop.
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self.generation_validation is not None:
            scores = self.generation_validation(self.model, self.state.global_step)
            output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in scores.items()})
        return output

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        # Checked at the first evaluation (the SFT model's, with `eval_on_start`), not after the first training steps.
        selection_metric = self.args.metric_for_best_model
        if selection_metric and metric_key_prefix == "eval":
            key = selection_metric if selection_metric.startswith("eval_") else f"eval_{selection_metric}"
            if key not in metrics:
                raise KeyError(
                    f"metric_for_best_model is {selection_metric!r}, but the evaluation gives only "
                    f"{sorted(metrics)}. Generation metrics need `eval_generations` > 0."
                )
        return metrics
