"""Model aliases: `local/name@alias` runs the version the alias points at; rollback undoes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import llmops_nb as lo
from llmops_nb.errors import InvalidName, LLMOpsError, ModelRegistryError, NotFound
from llmops_nb.llm import local
from llmops_nb.registry import model_aliases, register_model
from llmops_nb.store import get_store
from llmops_nb.store import models as m


def _register_two(tiny_model: Path, tiny_adapter: Path) -> None:
    register_model("tiny-ft", base=str(tiny_model), adapter_path=None, backend=None, parameters={})
    register_model(
        "tiny-ft", base=str(tiny_model), adapter_path=tiny_adapter, backend="peft", parameters={}
    )


def _text(model: str) -> str:
    return lo.complete(model, "hello there", max_tokens=8, temperature=0, cache=False).text


def _rows(table: type) -> int:
    with get_store().session() as s:
        return s.exec(select(func.count()).select_from(table)).one()[0]


def test_an_alias_runs_its_version_and_rolls_back(
    store_url: str, tiny_model: Path, tiny_adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_two(tiny_model, tiny_adapter)
    monkeypatch.setenv("LLMOPS_NB_USER", "frank")
    assert lo.set_model_alias("tiny-ft", "production", 1) == "local/tiny-ft@production -> v1"
    assert lo.set_model_alias("local/tiny-ft", "production", 2) == (
        "local/tiny-ft@production -> v2 (was v1)"
    )
    assert lo.set_model_alias("tiny-ft", "production", 2) == "local/tiny-ft@production is already v2"
    assert model_aliases("tiny-ft") == {"production": 2}

    source = local.resolve("tiny-ft@production")
    assert source.registered == "tiny-ft v2" and source.adapter_path == str(tiny_adapter.resolve())
    assert lo.model("tiny-ft@production").version == 2
    v1, v2 = _text("local/tiny-ft@1"), _text("local/tiny-ft@2")
    assert v1 != v2  # the adapter changes the output
    assert _text("local/tiny-ft@production") == v2

    assert lo.rollback_model("tiny-ft", "production", reason="v2 hallucinates") == (
        "local/tiny-ft@production rolled back: v2 -> v1"
    )
    assert local.resolve("tiny-ft@production").registered == "tiny-ft v1"
    assert _text("local/tiny-ft@production") == v1  # the next call runs the rolled-back version

    log = lo.audit()
    assert log.filter(log["target"] == "local/tiny-ft@production").select(
        "who", "action", "from", "to", "reason"
    ).rows() == [
        ("frank", "model alias moved", None, "v1", None),
        ("frank", "model alias moved", "v1", "v2", None),
        ("frank", "rollback", "v2", "v1", "v2 hallucinates"),
    ]


def test_rollback_is_an_undo_stack(store_url: str, tiny_model: Path, tiny_adapter: Path) -> None:
    _register_two(tiny_model, tiny_adapter)
    register_model("tiny-ft", base=str(tiny_model), adapter_path=None, backend=None, parameters={})
    for version in (1, 2, 3):
        lo.set_model_alias("tiny-ft", "prod", version)
    lo.rollback_model("tiny-ft", "prod")
    assert model_aliases("tiny-ft") == {"prod": 2}
    lo.rollback_model("tiny-ft", "prod")
    assert model_aliases("tiny-ft") == {"prod": 1}
    with pytest.raises(NotFound, match="has no earlier version to roll back to"):
        lo.rollback_model("tiny-ft", "prod")
    assert model_aliases("tiny-ft") == {"prod": 1}


def test_bad_input_is_one_message_and_writes_nothing(
    store_url: str, tiny_model: Path, tiny_adapter: Path
) -> None:
    _register_two(tiny_model, tiny_adapter)
    lo.set_model_alias("tiny-ft", "staging", 1)
    before = (_rows(m.ModelAlias), _rows(m.ModelAliasEvent), _rows(m.AuditEvent))

    with pytest.raises(NotFound, match=r"model 'tiny-ft' has no version 7 \(latest is v2\)"):
        lo.set_model_alias("tiny-ft", "production", 7)
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        lo.set_model_alias("nope", "production", 1)
    with pytest.raises(ModelRegistryError, match="reads as a version"):
        lo.set_model_alias("tiny-ft", "v2", 1)
    with pytest.raises(InvalidName, match="invalid alias name"):
        lo.set_model_alias("tiny-ft", "prod uction", 1)
    with pytest.raises(ModelRegistryError, match="built-in base"):
        lo.set_model_alias("smollm2", "production", 1)
    with pytest.raises(NotFound, match="has no earlier version to roll back to"):
        lo.rollback_model("tiny-ft", "staging")  # set once: no history to go back to
    with pytest.raises(NotFound, match=r"model 'tiny-ft' has no alias 'production' \(its aliases"):
        lo.rollback_model("tiny-ft", "production")
    with pytest.raises(LLMOpsError) as err:
        lo.complete("local/tiny-ft@production", "hi", max_tokens=2, cache=False)
    assert "has no alias 'production'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(NotFound, match="has no alias 'canary'"):
        lo.model("tiny-ft@canary")
    assert (_rows(m.ModelAlias), _rows(m.ModelAliasEvent), _rows(m.AuditEvent)) == before
