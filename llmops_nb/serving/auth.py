"""API keys of the serving endpoint: made once, stored as a hash, checked in constant time.

A key reads `llmops-<key id>-<secret>`. The key id is public: the store finds the key by
it, and traces record it to say who called. Only sha256(key id, secret) is stored, so the
store (and anyone who reads it) can check a key but never recover one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .. import config

if TYPE_CHECKING:
    from ..store import Store
    from ..store import models as m

__all__ = ["ApiKeyInfo", "NewKey", "check_key", "create_key", "key_hash", "list_keys", "revoke_key"]

PREFIX = "llmops"
_ID_BYTES = 6  # 12 hex digits: unique enough to look up, short enough to read in a trace


@dataclass(frozen=True)
class ApiKeyInfo:
    """What the store knows of a key: never the key itself."""

    key_id: str
    name: str
    author: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is shown this once and is not kept anywhere."""

    key: str
    info: ApiKeyInfo


def key_hash(key_id: str, secret: str) -> str:
    """The stored form of a key: sha256 over its id and secret (the id salts the hash)."""
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = key.partition("-")
    key_id, _, secret = rest.partition("-")
    if prefix != PREFIX or len(key_id) != 2 * _ID_BYTES or not secret:
        return None
    return key_id, secret


def _store(store: Store | None) -> Store:
    if store is not None:
        return store
    from ..store import get_store

    return get_store()


def _info(row: m.ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(row.key_id, row.name, row.author, row.created_at, row.revoked_at)


def create_key(name: str, *, store: Store | None = None) -> NewKey:
    """A new key named NAME (an application, a team); only its hash reaches the store."""
    config.check_name("key", name)
    key_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(32)
    row = _store(store).add_api_key(key_id, name, key_hash(key_id, secret), config.author())
    return NewKey(key=f"{PREFIX}-{key_id}-{secret}", info=_info(row))


def list_keys(*, store: Store | None = None) -> list[ApiKeyInfo]:
    """Every key made in the store, revoked ones included, oldest first."""
    return [_info(row) for row in _store(store).api_keys()]


def revoke_key(name: str, *, store: Store | None = None) -> ApiKeyInfo:
    """Revoke the active key named NAME: the endpoint refuses it from its next request."""
    config.check_name("key", name)
    return _info(_store(store).revoke_api_key(name))


def check_key(key: str, *, store: Store | None = None) -> str | None:
    """The key id when KEY is a valid, unrevoked key; None otherwise (no reason given)."""
    parts = split_key(key)
    if parts is None:
        return None
    key_id, secret = parts
    row = _store(store).api_key(key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.hash, key_hash(key_id, secret)):
        return None
    return key_id
