# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Direct Preference Optimization of a fine-tuned Phi-3-Vision: prefer the true price, category and title over the
model's own plausible wrong answers. Starts from the SFT output (a model, a merged model or a LoRA adapter); the
reference model is that SFT model.

Usage:

    # 1. SFT, 2. preference pairs from the SFT model's mistakes, 3. DPO (one 24-80 GB GPU)
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/sft.py recipes/burberry.yaml
    python scripts/make_preferences.py --dataset data/burberry --model outputs/phi3v-burberry \
        --output data/burberry-preferences
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/dpo.py recipes/burberry-dpo.yaml

    # CPU smoke run on the smoke SFT output (`make demo-dpo`)
    python scripts/dpo.py recipes/smoke-dpo.yaml

With `use_peft`, a new adapter trains on top of the SFT model (an SFT adapter is merged in memory first) and the
reference is the same model with the adapter disabled; without it, TRL keeps a frozen copy as the reference.
"""

import logging
import os

import datasets
from transformers import set_seed
from trl import DPOConfig, DPOTrainer, TrlParser

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import check_local_path
from phi3v.evaluation.loading import check_model_path
from phi3v.modeling.processing_phi3_v import stop_token_ids
from phi3v.training import (
    Phi3VDataCollator,
    Phi3VModelConfig,
    Phi3VScriptArguments,
    PredictionsTableCallback,
    load_processor,
    lora_config,
    parse_recipe,
    setup_logging,
    start_or_resume,
)
from phi3v.training.preference_collator import Phi3VPreferenceCollator
from phi3v.training.sft_start import load_sft_model


logger = logging.getLogger(__name__)


def main(script_args: Phi3VScriptArguments, training_args: DPOConfig, model_args: Phi3VModelConfig):
    set_seed(training_args.seed)

    ###############
    # Setup logging
    ###############
    setup_logging(training_args, script_args, model_args)
    check_model_path(model_args.model_name_or_path, model_args.base_model)
    check_local_path(script_args.dataset_name, "Dataset")
    checkpoint = start_or_resume(training_args, script_args, model_args, script="scripts/dpo.py")

    ################
    # SFT model (the policy's start and the reference), processor and collator
    ################
    processor = load_processor(model_args)
    model = load_sft_model(model_args, training_args)
    collator = Phi3VPreferenceCollator(processor, max_length=training_args.max_length)

    ################
    # Preference pairs from scripts/make_preferences.py
    ################
    dataset = datasets.load_from_disk(script_args.dataset_name)
    train_dataset = dataset[script_args.dataset_train_split]
    eval_dataset = dataset[script_args.dataset_test_split] if training_args.eval_strategy != "no" else None

    ################
    # Trainer
    ################
    training_args.remove_unused_columns = False  # the collator reads `images`, `prompt`, `chosen` and `rejected`
    callbacks = []
    if "wandb" in training_args.report_to and eval_dataset is not None and script_args.eval_predictions > 0:
        pairs = eval_dataset.select(range(min(script_args.eval_predictions, len(eval_dataset))))
        rows = [dict(pair, image=pair["images"][0]) for pair in pairs]
        table_collator = Phi3VDataCollator(processor, script_args.question, script_args.answer_template)
        callbacks.append(PredictionsTableCallback(table_collator, rows))
    trainer = DPOTrainer(
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
    policy = trainer.accelerator.unwrap_model(trainer.model)
    policy.config.use_cache = True
    policy.generation_config.eos_token_id = stop_token_ids(processor.tokenizer)
    if model_args.use_peft:
        # The DPO adapter sits on the SFT model merged in memory; save the merge so the output stands alone.
        policy = policy.merge_and_unload()
    if trainer.accelerator.is_main_process:
        policy.save_pretrained(training_args.output_dir)
        processor.save_pretrained(training_args.output_dir)
        policy.generation_config.save_pretrained(training_args.output_dir)
        trainer.create_model_card(
            model_name=os.path.basename(os.path.normpath(training_args.output_dir)),
            dataset_name=script_args.dataset_name,
            tags=["phi3-v", "vision-language", "product-catalogue", "dpo"],
        )
    logger.info(f"Model, processor and model card saved to {training_args.output_dir}")
    trainer.end()


if __name__ == "__main__":
    parser = TrlParser((Phi3VScriptArguments, DPOConfig, Phi3VModelConfig))
    main(*parse_recipe(parser))
