"""The one redaction of the project: what may reach the store, a trace or a rendered page.

`redact(value)` masks, in any text, dict or list:
- known secret values: every key-like environment variable (OPENAI_API_KEY, HF_TOKEN,
  AWS_SECRET_ACCESS_KEY, ...; see `config.secret_env_values`) and every value given to
  `add_secrets` (an explicit api_key=..., a key a traced call carried);
- the values of secret-named keys (api_key, authorization, password, token, cookie, ...),
  headers included (extra_headers={"Authorization": "Bearer ..."});
- credentials in URLs (user:password@, ?password=, ?api_key=) and `Bearer <token>`.

Import-light (re only), so any module may use it on its hot path: a string with no
secret costs one regex search.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from . import config

__all__ = [
    "MASK",
    "add_secrets",
    "drop_secrets",
    "is_secret_name",
    "known_secrets",
    "redact",
    "redact_text",
    "refresh_env",
    "secret_spans",
]

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter strings ("abc", "1") would mask ordinary words

# api_key, password, secret, authorization, credential, private_key, cookie, bearer, and
# names ending in token (access_token, hf_token; not max_tokens or token_ids).
_SECRET_NAME = re.compile(
    r"passw(or)?d|\bpwd\b|secret|api[._ \-]?key|apikey|private[._ \-]?key|credential"
    r"|auth(?!ors?\b)|(?<![a-z])token\Z|cookie|bearer",
    re.IGNORECASE,
)
# `Bearer abc...` / `Basic abc...` in text, e.g. a header quoted in an error message. A
# credential has a digit or is long: "token counting" and "bearer bonds" stay as written.
_CREDENTIAL = r"[A-Za-z0-9._~+/=\-]"
_BEARER = re.compile(
    rf"\b(Bearer|Basic|Token)\s+(?:(?={_CREDENTIAL}*\d){_CREDENTIAL}{{6,}}|{_CREDENTIAL}{{24,}})",
    re.IGNORECASE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+")
# password=... outside a URL too (a libpq "host=db password=pw" string, a quoted form).
_ASSIGNED_SECRET = re.compile(
    r"(\b(?:password|passwd|pwd|api_?key|apikey|secret_?key|access_?token)=)[^&#;\s\"']+",
    re.IGNORECASE,
)

_names: dict[str, bool] = {}
_known: set[str] = set()
_env_seen: dict[str, str] = {}
_values: re.Pattern[str] | None = None
_lock = threading.Lock()


def is_secret_name(key: str) -> bool:
    """Whether a key's value is a secret by its name alone (api_key, Authorization, ...)."""
    found = _names.get(key)
    if found is None:
        found = _SECRET_NAME.search(key) is not None
        if len(_names) < 10_000:
            _names[key] = found
    return found


def add_secrets(values: Iterable[Any]) -> None:
    """Register strings (API keys, tokens) that are masked wherever they appear later."""
    global _values
    new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH} - _known
    if not new:
        return
    with _lock:
        _known.update(new)
        ordered = sorted(_known, key=len, reverse=True)  # the longest first: no partial masks
        _values = re.compile("|".join(re.escape(v) for v in ordered))


def known_secrets() -> frozenset[str]:
    """The secret values registered so far, environment ones included."""
    refresh_env()
    return frozenset(_known)


def refresh_env() -> None:
    """Pick up key-like environment variables set since the last look (a dict scan: a
    hot path such as the span writer calls it once per batch, then `redact(refresh=False)`)."""
    current = config.secret_env_values()
    if current != _env_seen:
        _env_seen.clear()
        _env_seen.update(current)
        add_secrets(current.values())


def redact_text(text: str) -> str:
    """TEXT with known secrets, URL credentials and bearer tokens replaced by ***."""
    refresh_env()
    return _redact_text(text)


def _redact_text(text: str) -> str:
    values = _values
    if values is not None and values.search(text):
        text = values.sub(MASK, text)
    if "://" in text:
        text = _URL.sub(lambda m: config.mask_url(m.group(0)), text)
    if "=" in text:
        text = _ASSIGNED_SECRET.sub(lambda m: m.group(1) + MASK, text)
    if " " in text or "\t" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if config.settings.redact_pii:  # %config LLMOps.redact_pii: no PII reaches the store
        from .guard_checks import mask_pii

        text = mask_pii(text)
    return text


def secret_spans(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of what `redact_text` masks in TEXT: the guardrails' secrets
    check reports these, so the two never disagree on a known key or a URL password."""
    refresh_env()
    spans: list[tuple[str, int, int]] = []
    if _values is not None:
        spans += [("known_secret", m.start(), m.end()) for m in _values.finditer(text)]
    if "://" in text:
        for m in _URL.finditer(text):
            if config.mask_url(m.group(0)) != m.group(0):
                spans.append(("url_credentials", m.start(), m.end()))
    if "=" in text:
        spans += [("assigned_secret", m.end(1), m.end()) for m in _ASSIGNED_SECRET.finditer(text)]
    spans += [("bearer_token", m.start(), m.end()) for m in _BEARER.finditer(text)]
    return spans


def redact(value: Any, *, refresh: bool = True) -> Any:
    """A copy of VALUE (text, dict, list, tuple) that is safe to store or show."""
    if refresh:
        refresh_env()
    return _redact(value, 0)


def _redact(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _redact_text(value)
    if depth > 50:
        return value
    if isinstance(value, Mapping):
        return {k: (MASK if _masked_key(k, v) else _redact(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, depth + 1) for v in value)
    return value


def _masked_key(key: Any, value: Any) -> bool:
    """A secret-named key with a value worth hiding (not None, not a nested structure)."""
    return (
        isinstance(key, str)
        and is_secret_name(key)
        and value is not None
        and not isinstance(value, Mapping | list | tuple | bool)
    )


def drop_secrets(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """MAPPING without secret-named keys (at any depth), the rest redacted: for settings
    that are stored to be used again, where a masked key would be sent as '***'."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str) and is_secret_name(key) and not isinstance(value, Mapping):
            continue
        out[key] = drop_secrets(value) if isinstance(value, Mapping) else redact(value)
    return out
