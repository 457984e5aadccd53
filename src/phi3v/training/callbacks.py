"""A W&B table of generated answers on validation rows, logged at each evaluation."""

from collections.abc import Mapping, Sequence

from transformers import TrainerCallback

from phi3v.data.image_columns import load_image
from phi3v.inference.generation import answer_items
from phi3v.tasks.catalogue import PRICE_FIELD, AnswerTemplate
from phi3v.text_metrics import answer_scores

from .generation_validation import GenerationValidation


class PredictionsTableCallback(TrainerCallback):
    r"""
    At each evaluation, generates answers for a fixed set of validation items and logs a W&B table `eval/predictions`
    (the first image, the reference, the generated answer; for a catalogue with prices also the absolute price error)
    plus `eval/predictions_exact_match` (exact match after normalising, as every other metric of the project) and,
    for a catalogue, `eval/predictions_price_mae` over the answers whose price could be read.

    The answer is generated (greedy), not read off teacher-forced logits, so the table shows what the model would
    say. Every process generates, because ZeRO-3 and FSDP need all of them in the forward pass; the main process
    logs. W&B is initialised by transformers' `WandbCallback` (`report_to: wandb`), with the project and entity taken
    from `WANDB_PROJECT` and `WANDB_ENTITY`; `WANDB_MODE=offline` needs no login.

    Args:
        processor ([`Phi3VProcessor`]): renders and tokenises the prompts.
        items (`Sequence[Mapping]`): validation items (`images`, `prompt`, `references`; `phi3v.inference.items`).
        template ([`AnswerTemplate`], *optional*): for a catalogue, parses the answers to score their prices.
        max_new_tokens (`int`, *optional*, defaults to 64): the longest answer generated.
        validation ([`GenerationValidation`], *optional*): the run's validation by generation, whose first items are
            `items`: the table then shows the answers it generated at this evaluation instead of generating again.
    """

    def __init__(
        self,
        processor,
        items: Sequence[Mapping],
        template: AnswerTemplate | None = None,
        max_new_tokens=64,
        validation: GenerationValidation | None = None,
    ):
        if validation is not None and validation.items[: len(items)] != list(items):
            raise ValueError("The table's items must be the first items of the generation validation.")
        self.processor = processor
        self.items = list(items)
        self.template = template
        self.max_new_tokens = max_new_tokens
        self.validation = validation

    def generate(self, model) -> list[str]:
        """Greedy answers of `model` for the items: the validation's of this evaluation, or generated in one batch."""
        if self.validation is not None:
            return self.validation.answers[: len(self.items)]
        return answer_items(model, self.processor, self.items, len(self.items), self.max_new_tokens)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        answers = self.generate(model)
        if not state.is_world_process_zero:
            return
        import wandb

        scores_prices = self.template is not None and PRICE_FIELD in self.template.fields
        table = wandb.Table(columns=["image", "reference", "prediction", *(["price_error"] if scores_prices else [])])
        errors, matches = [], []
        for item, answer in zip(self.items, answers, strict=True):
            reference = item["references"][0]
            matches.append(answer_scores(answer, item["references"])["exact_match"])
            image = wandb.Image(load_image(item["images"][0])) if item["images"] else None
            if scores_prices:
                predicted, true = self.template.parse(answer)[PRICE_FIELD], self.template.parse(reference)[PRICE_FIELD]
                error = None if predicted is None else abs(predicted - true)
                errors += [] if error is None else [error]
                table.add_data(image, reference, answer, error)
            else:
                table.add_data(image, reference, answer)
        metrics = {
            "eval/predictions": table,
            "eval/predictions_exact_match": sum(matches) / len(matches),
            "train/global_step": state.global_step,
        }
        if errors:
            metrics["eval/predictions_price_mae"] = sum(errors) / len(errors)
        wandb.log(metrics)
