"""One encoder for every collator: a conversation becomes Phi-3-V token ids and the spans of its trained answers.

The chat template renders the whole conversation; the processor tokenises it the official way (image tags become
negative placeholder ids, a BOS follows each image block). An assistant turn's answer starts right after the
generation prompt that precedes it (`<|assistant|>`), whose tokens must be a prefix of the conversation's, and ends
with the `<|end|>` closing it. The SFT labels and the DPO completion mask are these spans and nothing else: not user
turns, not image placeholders, not the template's newlines, not padding.
"""

from dataclasses import dataclass

from transformers import ProcessorMixin

from phi3v.data.conversation import Conversation
from phi3v.modeling.chat_format import END_OF_TURN, IMAGE_TAG, build_prompt


@dataclass
class EncodedConversation:
    """Token ids of a conversation and the `[start, end)` spans of its trained assistant answers (`<|end|>` included)."""

    input_ids: list[int]
    answer_spans: list[tuple[int, int]]


def tokenize(processor: ProcessorMixin, text: str, image_token_counts: list[int]) -> list[int]:
    """Token ids of a text whose tags name the first images of `image_token_counts` (a prefix of a conversation may
    name fewer images than the whole)."""
    named = max((int(k) for k in IMAGE_TAG.findall(text)), default=0)
    return processor.tokenize_with_images(text, image_token_counts[:named])


def encode_conversation(
    processor: ProcessorMixin, conversation: Conversation, image_token_counts: list[int]
) -> EncodedConversation:
    """Tokenises a conversation and locates the answers of the assistant turns it trains.

    Args:
        processor ([`Phi3VProcessor`]): the checkpoint's processor (chat template and tokenizer).
        conversation ([`~phi3v.data.conversation.Conversation`]): the row; its images are not read here.
        image_token_counts (`list[int]`): placeholder tokens of each of the row's images, in tag order.

    Raises:
        `ValueError`: when the row's tags do not name exactly its images, when a prompt's tokens are not a prefix of
            the conversation's, or when the conversation trains no assistant turn.
    """
    if len(image_token_counts) != len(conversation.images):
        raise ValueError(f"Got {len(image_token_counts)} image token counts for {len(conversation.images)} images.")
    messages = conversation.messages
    text = build_prompt(processor, messages, add_generation_prompt=False)
    input_ids = processor.tokenize_with_images(text, image_token_counts)
    end_token_id = processor.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or index < conversation.train_from:
            continue
        prompt_ids = tokenize(processor, build_prompt(processor, messages[:index]), image_token_counts)
        if input_ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                "The prompt's tokens are not a prefix of the conversation's tokens, so the answer cannot be located; "
                f"check the chat template. Conversation: {text[:300]!r}"
            )
        start = len(prompt_ids)
        end = next((i + 1 for i in range(start, len(input_ids)) if input_ids[i] == end_token_id), None)
        if end is None:
            raise ValueError(f"An assistant turn has no closing <|end|>; check the chat template: {text[:300]!r}")
        spans.append((start, end))
    if not spans:
        raise ValueError(f"The conversation has no assistant turn to train on: {text[:300]!r}")
    return EncodedConversation(input_ids, spans)


def too_long_message(length: int, max_length: int, what: str = "A row") -> str:
    """The error of a sequence over `max_length`: truncating would cut an image or an answer, so it is never done."""
    return (
        f"{what} has {length} tokens, over max_length={max_length}; truncating it would cut an image or an answer. "
        "Drop long rows before training (sft.py and dpo.py do, with a count), raise `max_length` or lower `num_crops`."
    )
