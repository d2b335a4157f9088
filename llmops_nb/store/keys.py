"""Queries for the serving endpoint: its API keys (hashes only), and the marker its
route cache watches so that a change made in any kernel applies on the next request."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from ..errors import InvalidName, NotFound
from . import models as m
from .base import StoreBase


class KeyQueries(StoreBase):
    """API keys: added with their hash, looked up by their public id, revoked by name."""

    def add_api_key(self, key_id: str, name: str, key_hash: str, author: str = "") -> m.ApiKey:
        """Store a new key's hash; a name in use by a key that is not revoked is refused."""

        def add(s: Session) -> m.ApiKey:
            taken = s.exec(
                select(m.ApiKey.id).where(m.ApiKey.name == name, m.ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
            ).first()
            if taken is not None:
                raise InvalidName(
                    f"a key named {name!r} already exists: revoke it first "
                    f"(llmops-nb keys revoke {name}) or choose another name"
                )
            row = m.ApiKey(key_id=key_id, name=name, hash=key_hash, author=author)
            s.add(row)
            s.flush()
            return row

        return self.write(add)

    def api_key(self, key_id: str) -> m.ApiKey | None:
        """The key with this public id (revoked or not), or None."""
        with self.session() as s:
            return s.exec(select(m.ApiKey).where(m.ApiKey.key_id == key_id)).first()

    def api_keys(self) -> list[m.ApiKey]:
        """Every key, oldest first (revoked ones too: the list is the keys' history)."""
        with self.session() as s:
            return list(s.exec(select(m.ApiKey).order_by(m.ApiKey.id)))

    def revoke_api_key(self, name: str) -> m.ApiKey:
        """Revoke the active key named NAME; NotFound when there is none."""

        def revoke(s: Session) -> m.ApiKey:
            row = s.exec(
                select(m.ApiKey).where(m.ApiKey.name == name, m.ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
            ).first()
            if row is None:
                raise NotFound(f"no active key named {name!r} (llmops-nb keys list shows them)")
            row.revoked_at = m.utcnow()
            s.add(row)
            s.flush()
            return row

        return self.write(revoke)

    def serving_marker(self) -> str:
        """A fingerprint of what routes resolve through (prompt versions, alias moves,
        registered models, and every audited change: model aliases, splits, routers) and
        of the keys; one statement of index lookups. Unlike the sidebar's `change_marker`
        it ignores traces, which every served request writes."""
        columns = (
            func.max(m.PromptVersion.id),
            func.max(m.AliasEvent.id),
            func.max(m.AuditEvent.id),
            func.max(m.RegisteredModel.id),
            func.max(m.ApiKey.id),
            func.max(m.ApiKey.revoked_at),
        )
        with self.session() as s:
            values = s.exec(select(*(select(c).scalar_subquery() for c in columns))).one()
        return ":".join("" if v is None else str(v) for v in values)
