"""TRL's `GRPOTrainer` for Phi-3-V: the prompts tokenised as the model was trained to read them, TRL's image-token
suppression left out (Phi-3-V has no image token to suppress), and a KL reference passed in for full runs. Everything
else (sampling, rewards, advantages, the loss, the KL to the start model, logging, vLLM) is TRL's."""

from contextlib import ExitStack
from unittest import mock

import trl.trainer.grpo_trainer as trl_grpo
from trl import GRPOTrainer

from phi3v.modeling.chat_format import IMAGE_TAG, to_phi3v_messages

from .generation_validation import GeneratedAnswersEvaluation


def phi3v_prompt(messages: list[dict]) -> list[dict]:
    """A prompt as TRL hands it to the tokeniser, back in the form Phi-3-V was trained on: string content with
    `<|image_k|>` tags.

    TRL turns string content into typed parts and puts one image part per image before the first user turn's text.
    Where that text already names the images with tags (the prompts of `phi3v.training.rewards.grpo_dataset`), the
    image parts only carry the pictures and are dropped, so the prompt reads exactly as in SFT and evaluation (the
    catalogue asks `<|image_1|>What is shown...` without a newline); otherwise each image part becomes its tag.

    Args:
        messages (`list[dict]`): `{"role", "content"}` messages, content a string or a list of typed parts.
    """
    tagged = any(
        IMAGE_TAG.search(part["text"])
        for message in messages
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part["type"] == "text"
    )
    if tagged:
        messages = [
            {
                **message,
                "content": message["content"]
                if isinstance(message["content"], str)
                else [part for part in message["content"] if part["type"] != "image"],
            }
            for message in messages
        ]
    return to_phi3v_messages(messages)


def prompt_images(messages: list[dict]) -> list:
    """The images a prompt's typed image parts carry, in order."""
    return [
        part["image"]
        for message in messages
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part["type"] == "image" and part.get("image") is not None
    ]


class Phi3VGRPOTrainer(GeneratedAnswersEvaluation, GRPOTrainer):
    r"""
    A `GRPOTrainer` for Phi-3-V whose evaluations also score greedy answers with the task's metrics.

    Three changes to TRL, where its code assumes what Phi-3-V does not have:

    - prompts are tokenised from their string form with `<|image_k|>` tags (`phi3v_prompt`), as one left-padded
      batch whose padding is then stripped: TRL expects the processor to return unpadded token lists, while Phi-3-V's
      pads, and TRL's typed parts would render the image tag with a newline the model never saw after it;
    - TRL suppresses `config.image_token_id` in sampling; Phi-3-V has none (its image placeholders are negative ids,
      which sampling cannot produce), so nothing is suppressed;
    - without LoRA and with `beta` > 0, TRL loads the reference model from the policy's path itself, which fails for
      an architecture outside transformers (and an SFT adapter directory): `ref_model`, loaded as the policy was,
      is used instead (as `scripts/dpo.py` passes DPO's).

    The evaluation by generated answers is DPO's (`GeneratedAnswersEvaluation`, shared with [`Phi3VDPOTrainer`]):
    with `generation_validation`, every evaluation adds `eval_<metric>` of the greedy answers to TRL's `eval_reward`
    and `eval_rewards/<name>/mean`, so `metric_for_best_model` can name either.

    Args:
        *args, **kwargs: as for `trl.GRPOTrainer`.
        generation_validation ([`GenerationValidation`], *optional*): scores generated answers at each evaluation.
        ref_model (`PreTrainedModel`, *optional*): the frozen reference of a full (not LoRA) run with `beta` > 0.
    """

    def __init__(self, *args, ref_model=None, **kwargs):
        config = kwargs.get("model", args[0] if args else None).config
        absent = not hasattr(config, "image_token_id")
        with ExitStack() as patches:
            if absent:  # read once by TRL's __init__ for the suppression, removed below
                patches.enter_context(mock.patch.object(config, "image_token_id", None, create=True))
            if ref_model is not None:
                patches.enter_context(mock.patch.object(trl_grpo, "create_model_from_path", lambda *a, **k: ref_model))
            super().__init__(*args, **kwargs)
        if getattr(self, "generation_kwargs", None) and self.generation_kwargs.get("suppress_tokens") == [None]:
            del self.generation_kwargs["suppress_tokens"]
            self.generation_config.suppress_tokens = None

    def _tokenize_prompts(self, prompts: list):
        """Token ids of each prompt (unpadded, image placeholders as negative ids), its images, and the batch's
        `pixel_values` and `image_sizes` for `generate`."""
        processor = self.processing_class
        images = [prompt_images(prompt) for prompt in prompts]
        texts = [
            processor.apply_chat_template(phi3v_prompt(prompt), tokenize=False, add_generation_prompt=True)
            for prompt in prompts
        ]
        encoded = processor(texts, images if any(images) else None, padding_side="left")
        prompt_ids = [
            ids[mask.bool()].tolist()
            for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
        ]
        fields = {key: value for key, value in encoded.items() if key not in ("input_ids", "attention_mask")}
        return prompt_ids, (images if any(images) else None), fields
