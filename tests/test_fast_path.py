"""The OpenAI-compatible fast path (llm/openai_wire.py) against litellm: the same call
gives the same Completion, the same stored LLM span and the same errors, whichever path
sends it; and `llmops-nb eval` on a promptfoo config runs without importing litellm,
torch or altair. Real HTTP to the test server, real stores, a real subprocess.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.config import settings
from llmops_nb.llm import health
from llmops_nb.llm.client import ModelError
from llmops_nb.testing import OpenAIServer

MODEL = "openai/gpt-4o-mini"
KEY = "sk-test-fastpath-key"
ROOT = Path(__file__).resolve().parent.parent


def through(fast: bool, fn: Any) -> Any:
    settings.fast_path = fast
    try:
        return fn()
    finally:
        settings.fast_path = True


def span_of(trace_id: str | None) -> Any:
    assert trace_id is not None
    tracing.flush()
    (span,) = [s for s in lo.get_trace(trace_id).spans if s.kind == "llm"]
    return span


def comparable(span: Any) -> dict[str, Any]:
    """What a user reads in a stored LLM span, less what differs per request (ids, times)."""
    attributes = {k: v for k, v in span.attributes.items() if k != "gen_ai.response.id"}
    return {
        "name": span.name, "kind": span.kind, "status": span.status, "inputs": span.inputs,
        "outputs": span.outputs, "attributes": attributes,
    }  # fmt: skip


def test_the_fast_path_is_taken_and_litellm_is_not(fresh_server: OpenAIServer) -> None:
    """Without this the two-path suites would compare litellm with itself."""
    kwargs: dict[str, Any] = {"api_base": fresh_server.base_url, "api_key": KEY, "cache": False}
    through(True, lambda: lo.complete(MODEL, "which path", **kwargs))
    fast_headers = fresh_server.requests[-1]["headers"]
    through(False, lambda: lo.complete(MODEL, "which path", **kwargs))
    litellm_headers = fresh_server.requests[-1]["headers"]
    assert "x-stainless-lang" not in fast_headers  # the openai SDK (under litellm) sends these
    assert litellm_headers.get("x-stainless-lang") == "python"
    assert fast_headers["Authorization"] == litellm_headers["Authorization"] == f"Bearer {KEY}"
    # a parameter the fast path does not know goes through litellm, which translates it
    through(True, lambda: lo.complete(MODEL, "odd", extra_headers={"X-Tag": "t"}, **kwargs))
    assert fresh_server.requests[-1]["headers"].get("x-stainless-lang") == "python"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_same_completion_and_same_span_on_both_paths(
    store_url: str, openai_server: OpenAIServer, mode: str
) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "one two three four five"},
    ]
    kwargs: dict[str, Any] = {
        "messages": messages, "api_base": openai_server.base_url, "api_key": KEY,
        "cache": False, "temperature": 0.3, "max_tokens": 3, "seed": 7,
    }  # fmt: skip

    def call() -> lo.Completion:
        if mode == "sync":
            return lo.complete(MODEL, **kwargs)
        return asyncio.run(lo.acomplete(MODEL, **kwargs))

    fast, slow = through(True, call), through(False, call)
    for c in (fast, slow):
        assert (c.text, c.model, c.finish_reason, c.cached) == ("echo: one", MODEL, "length", False)
    assert fast.usage == slow.usage and fast.usage.output_tokens == 3
    assert fast.cost == pytest.approx(slow.cost) and fast.cost > 0
    assert fast.trace_id and slow.trace_id and fast.trace_id != slow.trace_id
    for c in (fast, slow):
        assert c.raw is not None
        assert c.raw["choices"][0]["message"]["content"] == c.text
        assert c.raw["usage"]["prompt_tokens"] == c.usage.input_tokens
    fast_span = comparable(span_of(fast.trace_id))
    slow_span = comparable(span_of(slow.trace_id))
    assert fast_span == slow_span
    assert fast_span["attributes"]["gen_ai.request.temperature"] == 0.3
    assert fast_span["attributes"]["gen_ai.usage.output_tokens"] == 3
    assert fast_span["attributes"]["llmops.cost"] == pytest.approx(fast.cost)
    assert fast_span["outputs"] == {"role": "assistant", "content": "echo: one"}
    assert KEY not in json.dumps(fast_span) and KEY not in json.dumps(slow_span)


def test_same_cached_answer_on_both_paths(store_url: str, fresh_server: OpenAIServer) -> None:
    kwargs: dict[str, Any] = {"api_base": fresh_server.base_url, "api_key": KEY}
    filled = through(True, lambda: lo.complete(MODEL, "cache me", **kwargs))
    hit = through(False, lambda: lo.complete(MODEL, "cache me", **kwargs))
    assert (filled.cached, hit.cached) == (False, True)
    assert (hit.text, hit.usage, hit.cost, hit.trace_id) == (
        filled.text, filled.usage, filled.cost, filled.trace_id,
    )  # fmt: skip
    assert fresh_server.stats.requests == 1


def failure(fast: bool, fn: Any) -> tuple[type, str, str | None]:
    health.reset()
    settings.fast_path = fast
    try:
        fn()
    except ModelError as exc:
        return type(exc), str(exc), exc.trace_id
    finally:
        settings.fast_path = True
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize(
    ("case", "setup", "extra"),
    [
        ("500 after retries", {"fail": (500, 2)}, {"retries": 1}),
        ("429 without retries", {"fail": (429, 1)}, {"retries": 0}),
        ("400", {"fail": (400, 1)}, {}),
        ("401", {"api_key": "sk-the-right-one"}, {}),
        ("404", {"models": ["gpt-4o"]}, {}),
        ("timeout", {"latency_ms": 5_000}, {"timeout": 0.3, "retries": 0}),
        ("refused", {}, {"api_base": "http://127.0.0.1:9/v1", "retries": 0}),
    ],
)
def test_same_errors_on_both_paths(
    fresh_server: OpenAIServer, case: str, setup: dict[str, Any], extra: dict[str, Any]
) -> None:
    kwargs: dict[str, Any] = {"api_base": fresh_server.base_url, "api_key": KEY, "cache": False}
    kwargs.update(extra)
    errors = []
    for fast in (True, False):
        fail = setup.get("fail")
        if fail:
            fresh_server.fail_next(fail[0], times=fail[1], retry_after=0)
        fresh_server.configure(**{k: v for k, v in setup.items() if k != "fail"})
        errors.append(failure(fast, lambda: lo.complete(MODEL, "fails", **kwargs)))
    (fast_type, fast_text, fast_trace), (slow_type, slow_text, slow_trace) = errors
    assert (fast_type, fast_text) == (slow_type, slow_text)
    assert "\n" not in fast_text and "sk-" not in fast_text
    if case not in ("refused", "timeout"):  # a timeout's type depends on which timer fired
        # the failed attempt's span: an error on both paths, with the same error.type
        fast_span, slow_span = span_of(fast_trace), span_of(slow_trace)
        assert fast_span.status == slow_span.status == "error"
        assert fast_span.attributes["error.type"] == slow_span.attributes["error.type"]


CONFIG = {
    "description": "fast path imports",
    "prompts": ["{{q}}", "Be brief. {{q}}"],
    "providers": [{"id": "openai:chat:gpt-4o-mini", "config": {"apiKey": "sk-cli-key"}}],
    "tests": [
        {"vars": {"q": "alpha"}, "assert": [{"type": "contains", "value": "{{q}}"}]},
        {"vars": {"q": "beta"}, "assert": [{"type": "icontains", "value": "BETA"}]},
    ],
}

# the CLI's own entry point, with a report of the heavy modules loaded, written at exit
CLI_WITH_IMPORT_REPORT = """
import atexit, json, sys
heavy = ("litellm", "torch", "altair", "transformers")
atexit.register(lambda: print("IMPORTED " + json.dumps([m for m in heavy if m in sys.modules])))
from llmops_nb.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
sys.exit(code)
"""


def test_cli_eval_on_a_promptfoo_config_imports_no_litellm_torch_or_altair(
    tmp_path: Path, llmops_home: Path, fresh_server: OpenAIServer
) -> None:
    config = json.loads(json.dumps(CONFIG))
    config["providers"][0]["config"]["apiBaseUrl"] = fresh_server.base_url
    path = tmp_path / "promptfooconfig.json"
    path.write_text(json.dumps(config))
    out = subprocess.run(
        [sys.executable, "-c", CLI_WITH_IMPORT_REPORT, "eval", str(path), "--no-cache"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
        env={**_env(), "LLMOPS_NB_HOME": str(llmops_home)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "PASSED" in out.stdout and "4 cells, 0 errors" in out.stdout
    imported = [line for line in out.stdout.splitlines() if line.startswith("IMPORTED ")]
    assert imported == ["IMPORTED []"], imported
    assert fresh_server.stats.requests == 4


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("LLMOPS_NB_FAST_PATH", None)
    return env
