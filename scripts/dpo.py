# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Direct Preference Optimization of a fine-tuned Phi-3-Vision on preference pairs in TRL's format (`images` +
`prompt` / `chosen` / `rejected`, e.g. `HuggingFaceH4/rlaif-v_formatted`, or `scripts/make_preferences.py`'s pairs,
which prefer the true price, category and title over the SFT model's own plausible wrong answers). Starts from the
SFT output (a model, a merged model or a LoRA adapter); the reference model is that SFT model.

Usage:

    # 1. SFT, 2. preference pairs from the SFT model's mistakes, 3. DPO (one 24-80 GB GPU)
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/sft.py recipes/burberry.yaml
    python scripts/make_preferences.py --dataset data/burberry --model outputs/phi3v-burberry \
        --output data/burberry-preferences
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/dpo.py recipes/burberry/dpo-lora.yaml

    # CPU smoke run on the short smoke SFT and its on-policy pairs (`make demo-dpo` makes both, see the recipe)
    python scripts/dpo.py recipes/smoke/dpo-lora.yaml

With `use_peft`, a new adapter trains on top of the SFT model (an SFT adapter is merged in memory first), the reference
is the same model with the adapter disabled, and the output is that adapter, whose base is the SFT output
(`scripts/merge_lora.py` merges the chain); without it, a frozen copy of the SFT model is the reference. Pairs longer
than `max_length` are dropped before training, with a count. Re-running the same command resumes from its newest
complete checkpoint; a different recipe into the same `output_dir` is refused (`docs/safety.md`).

Each evaluation scores the validation pairs (TRL's held-out `eval_rewards/accuracies`, `eval_rewards/margins`) and,
with `eval_generations`, the model's answers to that many validation prompts with the task's metrics
(`eval_price_mape`, `eval_category_accuracy`, ...). With `eval_on_start` the first evaluation scores the SFT model;
with `metric_for_best_model` and `load_best_model_at_end` the saved model is the best checkpoint, and the run ends by
saying whether it beat the SFT model (printed, in the model card and in `selection.json`).
"""

import logging

from transformers import set_seed
from trl import DPOConfig, TrlParser

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import check_local_path
from phi3v.errors import DataError, run_script
from phi3v.inference.loading import check_model_path
from phi3v.planning import print_run_plan
from phi3v.tasks import build_task, load_task
from phi3v.tasks.config import TaskConfig
from phi3v.training import (
    Phi3VDPOTrainer,
    Phi3VModelConfig,
    Phi3VPreferenceCollator,
    Phi3VScriptArguments,
    add_length_column,
    answer_validation,
    check_run_rows,
    load_processor,
    load_run_splits,
    load_sft_model,
    lora_config,
    parse_recipe,
    report_check,
    report_selection,
    save_run,
    setup_logging,
    start_or_resume,
)


logger = logging.getLogger(__name__)
PAIR_COLUMNS = {"prompt", "chosen", "rejected"}


def main(script_args: Phi3VScriptArguments, training_args: DPOConfig, model_args: Phi3VModelConfig):
    set_seed(training_args.seed)

    ###############
    # Setup logging
    ###############
    setup_logging(training_args, script_args, model_args)
    check_model_path(model_args.model_name_or_path, model_args.base_model)
    check_local_path(script_args.dataset_name, "Dataset")
    run_start = start_or_resume(training_args, script_args, model_args, script="scripts/dpo.py")

    ################
    # Preference pairs: checked before the model loads
    ################
    train_rows, eval_rows = load_run_splits(script_args, training_args)
    columns = train_rows.column_names
    if not PAIR_COLUMNS <= set(columns):
        raise DataError(
            f"{script_args.dataset_name} has columns {sorted(columns)}, not preference pairs ({sorted(PAIR_COLUMNS)} "
            "plus `images`). Build pairs from a catalogue with `python scripts/make_preferences.py --dataset ... "
            "--model <SFT output> --output ...`."
        )
    train_rows, eval_rows, checked_rows = check_run_rows(script_args, train_rows, eval_rows, preference=True)
    # What the SFT model was trained for carries over to the DPO model.
    task = load_task(model_args.model_name_or_path) or build_task(TaskConfig(dataset_format="conversational"))

    ################
    # SFT model (the policy's start and the reference), processor and collator
    ################
    processor = load_processor(model_args)
    collator = Phi3VPreferenceCollator(processor, max_length=training_args.max_length)
    plan = print_run_plan(model_args, training_args, train_rows, collator, preference=True)
    model = load_sft_model(model_args, training_args)
    train_dataset = add_length_column(train_rows, collator, training_args.max_length, lengths=plan.tokens.lengths)
    eval_dataset = None
    if eval_rows is not None:
        eval_dataset = add_length_column(eval_rows, collator, training_args.max_length)

    ################
    # Trainer
    ################
    training_args.remove_unused_columns = False  # the collator reads `images`, `prompt`, `chosen` and `rejected`
    # Greedy answers to validation prompts scored at each evaluation, and the W&B table of them (none twice).
    generation_validation, callbacks = answer_validation(
        processor, task, eval_dataset, "preference", None, script_args.eval_generations,
        script_args.eval_predictions, training_args.report_to,
    )  # fmt: skip
    # Without LoRA the reference is a frozen second copy of the SFT model, loaded as the policy was: TRL would load it
    # from the path itself, which fails for an architecture outside transformers (and for an SFT adapter directory).
    ref_model = None if model_args.use_peft else load_sft_model(model_args, training_args)
    trainer = Phi3VDPOTrainer(
        model=model,
        ref_model=ref_model,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=lora_config(model_args, model),
        callbacks=callbacks,
        generation_validation=generation_validation,
    )
    if script_args.check_only:
        report_check(trainer.model)
        return

    ###############
    # Training loop
    ###############
    logger.info("*** Train ***")
    run_start.prepare(training_args)  # output_dir changes only now: a start that failed earlier left it as it was
    if training_args.process_index == 0:
        checked_rows.write_report(training_args.output_dir)  # the pairs --drop_invalid_rows left out, and why
    train_result = trainer.train(resume_from_checkpoint=run_start.resume_from_checkpoint)
    metrics = train_result.metrics
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    ##################################
    # Save model, processor, task config and model card
    ##################################
    logger.info("*** Save model ***")
    save_run(trainer, processor, task.config, script_args, ["phi3-v", "vision-language", task.name, "dpo"], "dpo.py")
    # Did the saved checkpoint beat the SFT model on `metric_for_best_model`? Said plainly, and in the model card.
    report_selection(trainer, start_model=model_args.model_name_or_path, start_label="the SFT model")

    ##########
    # Evaluate
    ##########
    if training_args.do_eval and eval_dataset is not None:
        logger.info("*** Evaluate ***")
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    if training_args.push_to_hub:
        logger.info("Pushing to hub...")
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    trainer.end()


if __name__ == "__main__":
    parser = TrlParser((Phi3VScriptArguments, DPOConfig, Phi3VModelConfig))
    run_script(lambda: main(*parse_recipe(parser)))
