"""The server side of two sidebar fixes: the substring trace filter, and following the
project a notebook kernel chose with `%llmops project` (real jupyter_server, jp_fetch)."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest
from test_server import get, seed_traces

import llmops_nb as lo
from llmops_nb import config


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}


async def test_trace_name_filter_is_a_case_insensitive_substring(
    jp_fetch: Any, store_url: str
) -> None:
    seed_traces(6)  # names alternate "answer" and "retrieve_and_answer"
    both = await get(jp_fetch, "traces", name_contains="ANSWER")
    assert both["total"] == 6
    longer = await get(jp_fetch, "traces", name_contains="retrieve_")
    assert longer["total"] == 3 and {t["name"] for t in longer["items"]} == {"retrieve_and_answer"}
    # Wildcards are text: "%" and "_" match themselves only.
    assert (await get(jp_fetch, "traces", name_contains="%"))["total"] == 0
    assert (await get(jp_fetch, "traces", name_contains="answe_"))["total"] == 0
    assert (await get(jp_fetch, "traces", name="answer"))["total"] == 3  # exact stays exact


async def test_sidebar_follows_the_project_a_kernel_chose(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await get(jp_fetch, "changes")
    assert first["current"] == "default" and first["current_updated"] is None

    lo.set_project("elsewhere")  # outside a kernel: this process only, nothing recorded
    assert (await get(jp_fetch, "projects"))["current_updated"] is None
    assert not (config.home() / config.CURRENT_PROJECT_FILE).exists()

    import IPython

    kernel_shell = types.SimpleNamespace(kernel=object())  # what get_ipython() is in a kernel
    monkeypatch.setattr(IPython, "get_ipython", lambda: kernel_shell)
    monkeypatch.setenv("JPY_SESSION_NAME", "shop.ipynb")
    lo.set_project("shop")
    config.settings.project = "default"  # the server's own setting does not matter
    changes = await get(jp_fetch, "changes")
    projects = await get(jp_fetch, "projects")
    assert changes["current"] == projects["current"] == "shop"
    stamp = changes["current_updated"]
    assert stamp is not None and projects["current_updated"] == stamp
    record = json.loads((config.home() / config.CURRENT_PROJECT_FILE).read_text())
    assert record["project"] == "shop" and record["notebook"] == "shop.ipynb"

    lo.set_project("shop")  # choosing the same project again is news too
    assert (await get(jp_fetch, "changes"))["current_updated"] > stamp


def test_a_process_that_only_resolved_a_kernel_spec_records_no_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    KernelSpecManager().get_kernel_spec("python3")  # what nbclient does before a run
    lo.set_project("elsewhere")  # still no kernel here: nothing for the sidebar to follow
    assert not (config.home() / config.CURRENT_PROJECT_FILE).exists()
