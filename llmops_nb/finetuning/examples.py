"""Training examples: a prompt version's rendered messages, then the target as the answer.

Each example is the prompt exactly as the `local/` provider formats it at inference (the
base's chat template with the generation prompt, or "role: content" lines without one),
followed by the answer's tokens; only the answer tokens carry loss (`completion_mask`).
Tokenizing the two parts apart keeps the prompt's tokens identical to what the model
will see when it is asked, so what it learns is what it is later asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Conversation", "Encoded", "conversations", "encode", "encode_all", "prompt_text"]


@dataclass(frozen=True)
class Conversation:
    """One training row: the rendered messages and the answer the model should give."""

    messages: list[dict[str, str]]
    answer: str


@dataclass(frozen=True)
class Encoded:
    """Token ids and which of them are the answer (1) rather than the prompt (0)."""

    input_ids: list[int]
    completion_mask: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(self.completion_mask)


def conversations(rows: Iterable[dict[str, Any]], prompt: Any, target: str) -> list[Conversation]:
    """Render PROMPT (a PromptVersion) with each row's values; the TARGET column is the answer."""
    out = []
    for row in rows:
        messages = prompt.render({k: v for k, v in row.items() if k != target})
        out.append(Conversation(messages, str(row[target])))
    return out


def prompt_text(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, bool]:
    """The prompt as the `local/` provider writes it, and whether to add special tokens."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
        return text, False
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"]), True


def _answer_text(tokenizer: Any, conversation: Conversation, prompt: str) -> str:
    """What follows the prompt when the answer is the assistant's turn (with its end mark)."""
    eos = tokenizer.eos_token or ""
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(
            [*conversation.messages, {"role": "assistant", "content": conversation.answer}],
            tokenize=False,
        )
        if full.startswith(prompt):
            return full[len(prompt) :]
        return conversation.answer + eos  # a template whose generation prompt is not a prefix
    return " " + conversation.answer + eos


def encode(tokenizer: Any, conversation: Conversation) -> Encoded:
    """Prompt tokens (masked) then answer tokens (trained on)."""
    prompt, add_special = prompt_text(tokenizer, conversation.messages)
    prompt_ids = list(tokenizer(prompt, add_special_tokens=add_special)["input_ids"])
    answer = _answer_text(tokenizer, conversation, prompt)
    answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    return Encoded(prompt_ids + answer_ids, [0] * len(prompt_ids) + [1] * len(answer_ids))


def encode_all(
    tokenizer: Any, items: Sequence[Conversation], max_length: int
) -> tuple[list[Encoded], int]:
    """Encode every conversation; those longer than MAX_LENGTH tokens are left out (counted),
    since cutting one would train on a prompt without its answer."""
    kept, dropped = [], 0
    for item in items:
        encoded = encode(tokenizer, item)
        if len(encoded.input_ids) > max_length or not encoded.answer_tokens:
            dropped += 1
        else:
            kept.append(encoded)
    return kept, dropped
