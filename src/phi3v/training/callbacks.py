"""A W&B table of generated answers on validation images, logged at each evaluation."""

from collections.abc import Mapping, Sequence

import torch
from transformers import TrainerCallback

from phi3v.data.formatting import render_answer
from phi3v.evaluation.parsing import parse_answer
from phi3v.modeling.processing_phi3_v import stop_token_ids


class PredictionsTableCallback(TrainerCallback):
    r"""
    At each evaluation, generates answers for a fixed set of validation rows and logs a W&B table
    `eval/predictions` (image, ground truth, generated answer, absolute price error) plus `eval/predictions_price_mae`,
    the mean price error over the rows whose answer has a readable price.

    The answer is generated (greedy), not read off teacher-forced logits, so the table shows what the model would
    say. Every process generates, because ZeRO-3 and FSDP need all of them in the forward pass; the main process
    logs. W&B is initialised by transformers' `WandbCallback` (`report_to: wandb`), with the project and entity taken
    from `WANDB_PROJECT` and `WANDB_ENTITY`; `WANDB_MODE=offline` needs no login.

    Args:
        collator ([`Phi3VDataCollator`]): renders the prompts (same question and template as training).
        rows (`Sequence[Mapping]`): the validation rows to show, with decoded images.
        max_new_tokens (`int`, *optional*, defaults to 64): the longest answer generated.
    """

    def __init__(self, collator, rows: Sequence[Mapping], max_new_tokens: int = 64):
        self.collator = collator
        self.processor = collator.processor
        self.rows = list(rows)
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def generate(self, model) -> list[str]:
        """Greedy answers of `model` for the rows."""
        prompts = [self.collator.conversation(row, with_answer=False) for row in self.rows]
        images = [[] if row["image"] is None else [row["image"]] for row in self.rows]
        inputs = self.processor(prompts, images=images, padding_side="left").to(model.device)
        was_training = model.training
        model.eval()
        output = model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            use_cache=True,
            eos_token_id=stop_token_ids(self.processor.tokenizer),
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        model.train(was_training)
        return self.processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        answers = self.generate(model)
        if not state.is_world_process_zero:
            return
        import wandb

        table = wandb.Table(columns=["image", "ground_truth", "prediction", "price_error"])
        errors = []
        for row, answer in zip(self.rows, answers, strict=True):
            price = parse_answer(answer).price
            error = None if price is None else abs(price - row["full_price"])
            if error is not None:
                errors.append(error)
            truth = render_answer(row, self.collator.answer_template)
            image = None if row["image"] is None else wandb.Image(row["image"])
            table.add_data(image, truth, answer, error)
        metrics = {"eval/predictions": table, "train/global_step": state.global_step}
        if errors:
            metrics["eval/predictions_price_mae"] = sum(errors) / len(errors)
        wandb.log(metrics)
