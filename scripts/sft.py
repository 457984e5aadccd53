# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Supervised fine-tuning of Phi-3-Vision on any image-text dataset, with the loss on the assistant answers only.
The headline task: from a product photo, `Product: ..., Category: ..., Full Price: ...`.

Usage:

    # LoRA on one GPU (24-80 GB)
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/sft.py recipes/burberry.yaml

    # full fine-tune, frozen vision tower, ZeRO-3 on 8 GPUs
    accelerate launch --config_file accelerate_configs/zero3.yaml scripts/sft.py recipes/burberry/sft-full.yaml

    # your own data, in any supported layout (TRL conversational, the_cauldron, LLaVA JSON, DocVQA, catalogue)
    accelerate launch scripts/sft.py recipes/burberry.yaml --dataset_name my_data/llava.json \
        --dataset_format llava --dataset_train_split "train[:90%]" --dataset_test_split "train[90%:]" \
        --output_dir outputs/my-run

    # tiny model and synthetic catalogue on CPU (`make demo`); flags after the recipe override it
    python scripts/sft.py recipes/smoke/sft-full.yaml --num_train_epochs 1

The output directory holds the model (or the LoRA adapter), the processor, the generation config, `phi3v_task.json`
(what `scripts/evaluate.py` needs to ask and score it) and a model card, and loads with `AutoProcessor` and
`AutoModelForCausalLM` after `import phi3v`. Re-running the same command resumes from the last checkpoint in
`output_dir`.
"""

import logging

from transformers import set_seed
from trl import SFTConfig, SFTTrainer, TrlParser

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import check_local_path
from phi3v.errors import run_script
from phi3v.inference.loading import check_model_path
from phi3v.planning import print_run_plan
from phi3v.training import (
    Phi3VModelConfig,
    Phi3VScriptArguments,
    Phi3VSFTCollator,
    add_length_column,
    answer_validation,
    check_run_rows,
    load_model,
    load_processor,
    load_run_splits,
    lora_config,
    parse_recipe,
    report_check,
    save_run,
    setup_logging,
    start_or_resume,
    training_task,
)


logger = logging.getLogger(__name__)


def main(script_args: Phi3VScriptArguments, training_args: SFTConfig, model_args: Phi3VModelConfig):
    set_seed(training_args.seed)

    ###############
    # Setup logging
    ###############
    setup_logging(training_args, script_args, model_args)
    check_model_path(model_args.model_name_or_path, model_args.base_model)
    check_local_path(script_args.dataset_name, "Dataset")
    run_start = start_or_resume(training_args, script_args, model_args, script="scripts/sft.py")

    ################
    # Dataset and task: checked before the model loads
    ################
    train_rows, eval_rows = load_run_splits(script_args, training_args)
    train_rows, eval_rows, checked_rows = check_run_rows(script_args, train_rows, eval_rows)
    task, to_conversation = training_task(script_args, train_rows)

    ################
    # Model, processor and collator
    ################
    processor = load_processor(model_args)
    collator = Phi3VSFTCollator(processor, training_args.max_length, to_conversation)
    plan = print_run_plan(model_args, training_args, train_rows, collator)
    model = load_model(model_args, training_args)

    ################
    # Rows stay raw (images decode in the collator), with a `length` column for `group_by_length`
    ################
    train_dataset = add_length_column(train_rows, collator, training_args.max_length, lengths=plan.tokens.lengths)
    eval_dataset = None
    if eval_rows is not None:
        eval_dataset = add_length_column(eval_rows, collator, training_args.max_length)

    ################
    # Trainer
    ################
    # The collator reads the raw columns, so TRL must neither drop them nor tokenise the dataset itself.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {"skip_prepare_dataset": True}
    # With W&B, a table of the model's answers to the first validation rows at each evaluation.
    _, callbacks = answer_validation(
        processor, task, eval_dataset, task.config.dataset_format, to_conversation, 0, script_args.eval_predictions,
        training_args.report_to,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=lora_config(model_args, model),
        callbacks=callbacks,
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
        checked_rows.write_report(training_args.output_dir)  # the rows --drop_invalid_rows left out, and why
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
    save_run(trainer, processor, task.config, script_args, ["phi3-v", "vision-language", task.name], "sft.py")

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
    parser = TrlParser((Phi3VScriptArguments, SFTConfig, Phi3VModelConfig))
    run_script(lambda: main(*parse_recipe(parser)))
