# Copyright 2026 The phi3v-recipes authors. Licensed under the Apache License, Version 2.0.
"""Reinforcement learning of a fine-tuned Phi-3-Vision on the task's own score (GRPO, TRL's `GRPOTrainer`): for each
photo the model samples a group of answers, each is scored with the task's rewards (`Task.rewards`: for the catalogue
`format`, `price` on a log scale, `category` and `title`; ANLS or accuracy for the Cookbook's tasks; edit similarity
for a conversation), and the policy moves toward the answers that beat their group's mean. Starts from the SFT output
(a model, a merged model or a LoRA adapter), on any dataset layout SFT reads: the prompt is the conversation up to its
last assistant turn, the reference that turn.

Usage:

    # 1. SFT, 2. GRPO on the same data (one 40-80 GB GPU)
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/sft.py recipes/burberry.yaml
    accelerate launch --config_file accelerate_configs/single_gpu.yaml scripts/grpo.py recipes/burberry/grpo-lora.yaml

    # CPU smoke run on the smoke SFT model (`make demo` makes it; `make demo-grpo` runs all and reports)
    python scripts/grpo.py recipes/smoke/grpo-lora.yaml

The rewards are `reward_funcs` (components of the task's reward, or `module:function` paths to your own), weighted by
`reward_weights`, each logged as `rewards/<name>/mean`; a path that does not import, is not callable or cannot take
TRL's arguments stops the run before the model loads. With `use_peft`, a new adapter trains on top of the SFT model
(an SFT adapter is merged in memory first) and the KL reference (`beta` > 0) is the same model with the adapter
disabled; without it, a frozen copy of the SFT model. Re-running the same command resumes from its newest complete
checkpoint; a different recipe into the same `output_dir` is refused (`docs/safety.md`).

Each evaluation samples answers to the validation prompts (TRL's `eval_reward`, `eval_rewards/<name>/mean`) and, with
`eval_generations`, scores the greedy answers to that many validation prompts with the task's metrics
(`eval_price_mape`, `eval_category_accuracy`, ...), as DPO does. With `eval_on_start` the first evaluation scores the
SFT model; with `metric_for_best_model` and `load_best_model_at_end` the saved model is the best checkpoint, and the
run ends by saying whether it beat the SFT model (printed, in the model card and in `selection.json`).
"""

import logging

from transformers import set_seed
from trl import GRPOConfig, TrlParser

import phi3v  # noqa: F401  (registers Phi-3-V with the Auto classes)
from phi3v.checks import check_local_path
from phi3v.errors import run_script
from phi3v.inference.loading import check_model_path
from phi3v.training import (
    Phi3VGRPOScriptArguments,
    Phi3VGRPOTrainer,
    Phi3VModelConfig,
    answer_validation,
    check_run_rows,
    grpo_dataset,
    load_processor,
    load_run_splits,
    load_sft_model,
    lora_config,
    parse_recipe,
    report_check,
    report_selection,
    reward_functions,
    save_run,
    setup_logging,
    start_or_resume,
    training_task,
)


logger = logging.getLogger(__name__)


def main(script_args: Phi3VGRPOScriptArguments, training_args: GRPOConfig, model_args: Phi3VModelConfig):
    set_seed(training_args.seed)

    ###############
    # Setup logging
    ###############
    setup_logging(training_args, script_args, model_args)
    check_model_path(model_args.model_name_or_path, model_args.base_model)
    check_local_path(script_args.dataset_name, "Dataset")
    run_start = start_or_resume(training_args, script_args, model_args, script="scripts/grpo.py")

    ################
    # Prompts, task and rewards: checked before the model loads
    ################
    train_rows, eval_rows = load_run_splits(script_args, training_args)
    train_rows, eval_rows, checked_rows = check_run_rows(script_args, train_rows, eval_rows)
    task, to_conversation = training_task(script_args, train_rows)
    layout = task.config.dataset_format
    train_dataset = grpo_dataset(task, train_rows, layout, to_conversation)
    eval_dataset = None if eval_rows is None else grpo_dataset(task, eval_rows, layout, to_conversation)
    rewards = reward_functions(task, script_args.reward_funcs, train_dataset)

    ################
    # SFT model (the policy's start and the KL reference) and processor
    ################
    processor = load_processor(model_args)
    model = load_sft_model(model_args, training_args)

    ################
    # Trainer
    ################
    # Greedy answers to validation prompts scored at each evaluation, and the W&B table of them (none twice), as long
    # as the completions training samples may be: the rewards and the validation judge answers of one length limit.
    generation_validation, callbacks = answer_validation(
        processor, task, eval_rows, layout, to_conversation, script_args.eval_generations,
        script_args.eval_predictions, training_args.report_to, training_args.max_completion_length,
    )  # fmt: skip
    # Without LoRA the KL reference is a frozen second copy of the SFT model, loaded as the policy was.
    needs_copy = not model_args.use_peft and training_args.beta != 0.0
    ref_model = load_sft_model(model_args, training_args) if needs_copy else None
    trainer = Phi3VGRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=lora_config(model_args, model),
        callbacks=callbacks,
        generation_validation=generation_validation,
        ref_model=ref_model,
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
    save_run(trainer, processor, task.config, script_args, ["phi3-v", "vision-language", task.name, "grpo"], "grpo.py")
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
    parser = TrlParser((Phi3VGRPOScriptArguments, GRPOConfig, Phi3VModelConfig))
    run_script(lambda: main(*parse_recipe(parser)))
