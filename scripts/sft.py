# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Supervised fine-tuning of Phi-3-Vision on a product catalogue: image in, `Product: ..., Category: ..., Full Price:
...` out, with the loss on the answer only.

Usage:

    # LoRA on one GPU (24-80 GB)
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/sft.py recipes/burberry.yaml

    # full fine-tune, frozen vision tower, ZeRO-3 on 8 GPUs
    accelerate launch --config_file accelerate_configs/zero3.yaml scripts/sft.py recipes/burberry-full.yaml

    # tiny model and synthetic catalogue on CPU (`make demo`); flags after the recipe override it
    python scripts/sft.py recipes/smoke.yaml --num_train_epochs 1

The output directory holds the model (or the LoRA adapter), the processor, the generation config and a model card,
and loads with `AutoProcessor` and `AutoModelForCausalLM` after `import phi3v`. Re-running the same command resumes
from the last checkpoint in `output_dir`.
"""

import logging
import os

from transformers import set_seed
from trl import SFTConfig, SFTTrainer, TrlParser

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import check_local_path
from phi3v.evaluation.loading import check_model_path
from phi3v.modeling.processing_phi3_v import stop_token_ids
from phi3v.training import (
    Phi3VDataCollator,
    Phi3VModelConfig,
    Phi3VScriptArguments,
    PredictionsTableCallback,
    add_length_column,
    append_usage,
    load_catalogue,
    load_model,
    load_processor,
    lora_config,
    parse_recipe,
    setup_logging,
    start_or_resume,
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
    checkpoint = start_or_resume(training_args, script_args, model_args, script="scripts/sft.py")

    ################
    # Model, processor and collator
    ################
    processor = load_processor(model_args)
    model = load_model(model_args, training_args)
    collator = Phi3VDataCollator(
        processor, script_args.question, script_args.answer_template, max_length=training_args.max_length
    )

    ################
    # Dataset: raw rows (images decode in the collator) with a `length` column for `group_by_length`
    ################
    dataset = load_catalogue(script_args.dataset_name, script_args.dataset_config)
    train_dataset = add_length_column(dataset[script_args.dataset_train_split], collator, training_args.max_length)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = add_length_column(dataset[script_args.dataset_test_split], collator, training_args.max_length)

    ################
    # Trainer
    ################
    # The collator reads the catalogue columns, so TRL must neither drop them nor tokenise the dataset itself.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {"skip_prepare_dataset": True}
    callbacks = []
    if "wandb" in training_args.report_to and eval_dataset is not None and script_args.eval_predictions > 0:
        rows = eval_dataset.select(range(min(script_args.eval_predictions, len(eval_dataset))))
        callbacks.append(PredictionsTableCallback(collator, rows))
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

    ###############
    # Training loop
    ###############
    logger.info("*** Train ***")
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = train_result.metrics
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    ##################################
    # Save model, processor and model card
    ##################################
    logger.info("*** Save model ***")
    base_model = trainer.accelerator.unwrap_model(trainer.model)
    base_model.config.use_cache = True  # checkpointing turned the cache off for training only
    base_model.generation_config.eos_token_id = stop_token_ids(processor.tokenizer)  # `<|end|>` ends an answer
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(training_args.output_dir)
        base_model.generation_config.save_pretrained(training_args.output_dir)
        is_local_dataset = os.path.isdir(script_args.dataset_name)  # the card links datasets to the Hub
        trainer.create_model_card(
            model_name=os.path.basename(os.path.normpath(training_args.output_dir)),
            dataset_name=None if is_local_dataset else script_args.dataset_name,
            tags=["phi3-v", "vision-language", "product-catalogue"],
        )
        append_usage(training_args.output_dir, script_args.question, is_adapter=model_args.use_peft)
    trainer.accelerator.print(f"Model, processor and model card saved to {training_args.output_dir}")

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
    main(*parse_recipe(parser))
