"""Secrets kept out of spans: argument names that are never recorded, and key values masked.

One place for tracing's secret handling: `is_secret_name` decides which argument and
attribute names are redacted, `add_secrets` registers values (API keys, tokens) that the
writer masks as *** wherever they appear, and key-like environment variables are
registered when tracing starts and before each batch is written.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "add_secrets", "env_secrets", "is_secret_name", "known_secrets", "mask"]

# Names whose values are never recorded (like pydantic logfire's default scrubbing):
# api_key, password, secret, authorization, credential, private_key, cookie, bearer, and
# names ending in token (access_token, hf_token; not max_tokens or token_ids).
_SECRET_NAME = re.compile(
    r"passw(or)?d|secret|api[._ -]?key|apikey|private[._ -]?key|credential|auth(?!ors?\b)"
    r"|(?<![a-z])token\Z|cookie|bearer",
    re.IGNORECASE,
)
_secret_names: dict[str, bool] = {}
REDACTED = "[redacted]"

_known_secrets: set[str] = set()
_secret_values: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def is_secret_name(key: str) -> bool:
    """Whether an argument or attribute called KEY holds a secret (its value is redacted)."""
    found = _secret_names.get(key)
    if found is None:
        found = _SECRET_NAME.search(key) is not None
        if len(_secret_names) < 10_000:
            _secret_names[key] = found
    return found


def add_secrets(values: Iterable[Any]) -> None:
    """Strings (API keys, tokens) that must never be stored: the writer masks them as ***.

    The litellm callback registers every key a call carries; key-like environment
    variables are registered when tracing starts.
    """
    global _secret_values
    new = {v for v in values if isinstance(v, str) and len(v) >= 6} - _known_secrets
    if not new:
        return
    with _secrets_lock:
        _known_secrets.update(new)
        ordered = sorted(_known_secrets, key=len, reverse=True)
        _secret_values = re.compile("|".join(re.escape(v) for v in ordered))


def known_secrets() -> frozenset[str]:
    """Every secret value registered so far (keys of calls, key-like environment variables)."""
    return frozenset(_known_secrets)


# Environment variables that hold credentials: OPENAI_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY...
_SECRET_ENV = re.compile(r"(?:^|_)(?:API_?KEY|KEY|KEY_ID|TOKEN|SECRET|PASSWORD|PASSWD)$", re.I)


def env_secrets() -> list[str]:
    """The values of key-like environment variables (long enough to be real keys)."""
    return [v for k, v in os.environ.items() if len(v) >= 12 and _SECRET_ENV.search(k)]


def mask(value: Any) -> Any:
    """VALUE (a string, or lists and dicts of them) with every registered secret as ***."""
    rx = _secret_values
    return value if rx is None else _mask(value, rx)


def _mask(value: Any, rx: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return rx.sub("***", value) if rx.search(value) else value
    if isinstance(value, list):
        return [_mask(v, rx) for v in value]
    if isinstance(value, dict):
        return {k: _mask(v, rx) for k, v in value.items()}
    return value


def _after_fork() -> None:
    global _secrets_lock
    _secrets_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
