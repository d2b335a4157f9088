"""The audit log: every change that matters is recorded with who, what, when and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, func, select

import llmops_nb as lo
from llmops_nb import registry
from llmops_nb.audit import AuditError, record
from llmops_nb.store import Store, get_store
from llmops_nb.store import models as m
from llmops_nb.store.base import MIGRATIONS_DIR


def _events() -> int:
    with get_store().session() as s:
        return s.exec(select(func.count()).select_from(m.AuditEvent)).one()[0]


def test_prompt_changes_are_in_the_log_with_who_and_why(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_NB_USER", "alice")
    lo.register_prompt("support_reply", "Answer {{q}}", message="first draft")
    lo.register_prompt("support_reply", "Answer politely: {{q}}")
    lo.set_alias("support_reply", "production", 1)
    monkeypatch.setenv("LLMOPS_NB_USER", "bob")
    lo.set_alias("support_reply", "production", 2)
    lo.set_alias("support_reply", "production", 2)  # not a move: not logged
    lo.rollback("support_reply", "production", reason="v2 is rude")

    log = lo.audit()
    assert log.columns == ["when", "who", "action", "target", "from", "to", "reason"]
    assert log.select("who", "action", "target", "from", "to", "reason").rows() == [
        ("alice", "prompt registered", "support_reply", None, "v1", "first draft"),
        ("alice", "prompt registered", "support_reply", "v1", "v2", None),
        ("alice", "alias moved", "support_reply@production", None, "v1", None),
        ("bob", "alias moved", "support_reply@production", "v1", "v2", None),
        ("bob", "rollback", "support_reply@production", "v2", "v1", "v2 is rude"),
    ]
    assert log["when"].dtype == pl.Datetime("us", "UTC")
    assert log["when"].is_sorted()
    assert lo.prompt("support_reply@production").version == 1


def test_record_filters_and_projects(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_NB_USER", "carol")
    record("split set", "support_reply", to="production 0.9, candidate 0.1", reason="A/B")
    record("alert fired", "slow", reason="p95_ms 2400 > 2000", project="other")

    assert lo.audit(action="split set")["target"].to_list() == ["support_reply"]
    assert lo.audit(action="alert fired").height == 0  # another project's event
    other = lo.audit(project="other")
    assert other.select("who", "action", "reason").rows() == [
        ("carol", "alert fired", "p95_ms 2400 > 2000")
    ]
    assert lo.audit(since="1h").height == 1
    assert lo.audit(since=timedelta(minutes=5)).height == 1
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert lo.audit(since=tomorrow).height == 0
    assert lo.audit(since="2020-01-01").height == 1


def test_bad_input_is_one_clear_message_and_writes_nothing(store_url: str) -> None:
    get_store()
    before = _events()
    with pytest.raises(AuditError, match="unknown audit action 'alias deleted'; known: prompt"):
        record("alias deleted", "x")
    with pytest.raises(AuditError, match="unknown audit action"):
        lo.audit(action="edited")
    with pytest.raises(AuditError, match="neither a duration nor a date"):
        lo.audit(since="last tuesday")
    with pytest.raises(AuditError, match="neither a duration nor a date"):
        lo.audit(since="-3d")
    assert _events() == before


def test_model_registration_is_logged(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_NB_USER", "dana")
    registry.register_model(
        "support-ft", base="local/smollm2", adapter_path=None, backend=None, parameters={}
    )
    registry.register_model(
        "support-ft", base="local/smollm2", adapter_path=None, backend=None, parameters={}
    )
    log = lo.audit(action="model registered")
    assert log.select("who", "target", "to", "reason").rows() == [
        ("dana", "local/support-ft", "v1", "base local/smollm2"),
        ("dana", "local/support-ft", "v2", "base local/smollm2"),
    ]


def test_lo_audit_stays_the_function_after_its_module_is_imported() -> None:
    import importlib

    importlib.import_module("llmops_nb.audit")
    from llmops_nb import audit as exported

    assert callable(exported) and lo.audit is exported


def test_the_store_offers_no_way_to_edit_or_delete_events() -> None:
    methods = [n for n in dir(Store) if "audit" in n.lower()]
    assert sorted(methods) == ["append_audit", "audit_events"]


def test_migration_copies_the_prompt_alias_log(store_url: str, llmops_home: Path) -> None:
    """A store written before the audit log existed keeps its alias history in the log."""
    from alembic import command
    from alembic.config import Config

    llmops_home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(store_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002_rag")
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(m.Project.__table__.insert().values(id=1, name="default", created_at=t0))
        conn.execute(
            m.Prompt.__table__.insert().values(
                id=1, project_id=1, name="greet", created_at=t0, updated_at=t0
            )
        )
        for vid in (1, 2):
            conn.execute(
                m.PromptVersion.__table__.insert().values(
                    id=vid, prompt_id=1, version=vid, hash=f"h{vid}", template=f"hi {vid}",
                    parameters={}, meta={}, variables=[], author="eve", created_at=t0,
                )  # fmt: skip
            )
        conn.execute(
            m.PromptAlias.__table__.insert().values(
                id=1, prompt_id=1, alias="prod", version_id=1, updated_at=t0
            )
        )
        for i, (action, before, after) in enumerate(
            [("set", None, 1), ("set", 1, 2), ("rollback", 2, 1)]
        ):
            conn.execute(
                m.AliasEvent.__table__.insert().values(
                    prompt_id=1, alias="prod", action=action, from_version_id=before,
                    to_version_id=after, author="eve", created_at=t0 + timedelta(minutes=i),
                )  # fmt: skip
            )
    engine.dispose()

    log = lo.audit()  # opens the store: migrates to the head
    assert log.select("who", "action", "target", "from", "to").rows() == [
        ("eve", "alias moved", "greet@prod", None, "v1"),
        ("eve", "alias moved", "greet@prod", "v1", "v2"),
        ("eve", "rollback", "greet@prod", "v2", "v1"),
    ]
    assert log["when"].to_list()[2] == t0 + timedelta(minutes=2)
    # the history still drives rollbacks after the upgrade: undo the rollback's set
    lo.set_alias("greet", "prod", 2)
    lo.rollback("greet", "prod")
    assert lo.prompt("greet@prod").version == 1
