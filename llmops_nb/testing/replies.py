"""What the test server says: deterministic replies, token counts and embeddings.

Pure functions of the request, so a test can compute the expected answer itself
(`echo_reply`, `embed_text`) and a custom `reply` can build on them.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["Reply", "content_text", "count_tokens", "echo_reply", "embed_text", "truncate_reply"]

Reply = Callable[[dict[str, Any]], str]
"""A reply function: the request body (JSON) -> the assistant's text."""

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply: `echo: ` + the last user message (or the prompt)."""
    if "messages" in body:
        for message in reversed(body.get("messages") or []):
            if message.get("role") == "user":
                return "echo: " + content_text(message.get("content"))
        return "echo: "
    prompt = body.get("prompt", "")
    return "echo: " + (prompt if isinstance(prompt, str) else " ".join(map(str, prompt)))


@lru_cache(maxsize=65536)
def _word_vector(word: str, dim: int) -> tuple[float, ...]:
    rng = random.Random(hashlib.sha256(word.encode()).digest())
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dim))


def embed_text(text: str, dim: int = 64) -> list[float]:
    """A unit vector from the hashes of the words: equal texts give equal vectors and
    texts that share words point the same way, so cosine similarity means something."""
    vector = [0.0] * dim
    words = [w.lower() for w in _TOKEN.findall(text) if w.isalnum() or w.isalpha()]
    for word in words or [text]:
        for i, x in enumerate(_word_vector(word, dim)):
            vector[i] += x
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def truncate_reply(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Cut the reply at max_tokens like a real model would, saying so in finish_reason."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if not limit:
        return text, "stop"
    spans = [m.end() for m in _TOKEN.finditer(text)]
    if len(spans) <= int(limit):
        return text, "stop"
    return text[: spans[int(limit) - 1]], "length"
