"""The sidebar's index list: /llmops-nb/api/indexes on a real jupyter_server (jp_fetch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_server import error, get

import llmops_nb as lo


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}


async def test_indexes_are_listed_with_size_model_and_version(jp_fetch: Any) -> None:
    rng = np.random.default_rng(0)
    docs = lo.index("docs", ["a", "b", "c"], vectors=rng.normal(size=(3, 8)))
    docs.add(["d"], vectors=rng.normal(size=(1, 8)))
    lo.index("faq", ["q1", "q2"], vectors=rng.normal(size=(2, 8)), embed="openai/x-embed", ef=99)
    lo.index("elsewhere", ["z"], vectors=rng.normal(size=(1, 8)), project="other")

    listing = await get(jp_fetch, "indexes")
    assert listing["total"] == 2
    rows = {r["name"]: r for r in listing["items"]}
    assert sorted(rows) == ["docs", "faq"]
    assert (rows["docs"]["version"], rows["docs"]["n_items"], rows["docs"]["versions"]) == (2, 4, 2)
    assert (rows["docs"]["embed_model"], rows["docs"]["dim"]) == ("local/minilm", 8)
    assert (rows["faq"]["embed_model"], rows["faq"]["ef"]) == ("openai/x-embed", 99)
    assert rows["faq"]["created_at"].startswith("20")

    other = await get(jp_fetch, "indexes", project="other")
    assert [r["name"] for r in other["items"]] == ["elsewhere"]
    assert (await get(jp_fetch, "indexes", project="nobody"))["total"] == 0
    paged = await get(jp_fetch, "indexes", limit=1, offset=1)
    assert [r["name"] for r in paged["items"]] == ["faq"] and paged["total"] == 2
    bad = await error(jp_fetch, "indexes", params={"limit": "0"})
    assert bad.code == 400


async def test_the_index_list_needs_jupyters_authentication(jp_fetch: Any) -> None:
    for token in ("", "token wrong"):
        response = await error(jp_fetch, "indexes", headers={"Authorization": token})
        assert response.code == 403
