"""API keys never reach the store, a notebook output or HTML: `redaction` on every path.

The end-to-end test runs with OPENAI_API_KEY=sk-test-SECRET123 against the real test
server (a 401 that quotes the key, a reply that echoes it, extra_headers and an api_base
that carry it, a %%prompt that names it) and greps the whole SQLite file, a pg_dump of
the PostgreSQL store and the eval panel's HTML for it.
"""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import pytest
from llm_paths import llm_path  # noqa: F401  (the fixture)

import llmops_nb as lo
from llmops_nb import redaction, tracing
from llmops_nb.config import mask_url
from llmops_nb.llm.client import ModelCallError
from llmops_nb.store import get_store, reset_store
from llmops_nb.testing import OpenAIServer

SECRET = "sk-test-SECRET123"
MODEL = "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://u:pw@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
        ("postgresql://u:p@ss@w@db/x?sslmode=require", "postgresql://u:***@db/x?sslmode=require"),
        ("postgresql://u@db/x?password=pw&sslmode=require", "postgresql://u@db/x?password=***&sslmode=require"),
        ("postgresql://db/x?user=u&sslpassword=pw", "postgresql://db/x?user=u&sslpassword=***"),
        ("https://api.example.com/v1?api_key=k-123&v=2", "https://api.example.com/v1?api_key=***&v=2"),
        ("sqlite:////home/u/.llmops_nb/store.db", "sqlite:////home/u/.llmops_nb/store.db"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)  # fmt: skip
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_redact_masks_known_values_names_urls_and_bearer_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    monkeypatch.setenv("PWD", "/work/wt/llm")  # the shell's directory is not a secret
    redaction.add_secrets(["explicit-key-42"])
    text = (
        f"401: Incorrect API key provided: {SECRET}; also hf_abcdefghijklmnop, "
        "explicit-key-42, Authorization: Bearer tok_9f8e7d6c5b4a and "
        "postgresql://me:hunter2@db/x host=db password=hunter3 in /work/wt/llm"
    )
    assert redaction.redact_text(text) == (
        "401: Incorrect API key provided: ***; also ***, ***, Authorization: Bearer *** and "
        "postgresql://me:***@db/x host=db password=*** in /work/wt/llm"
    )
    spec = {
        "model": MODEL,
        "api_base": "http://u:pw@proxy:8080/v1",
        "parameters": {
            "temperature": 0,
            "max_tokens": 5,
            "extra_headers": {"Authorization": "Bearer abc123456", "X-Trace": "1"},
            "api_key": "anything",
            "access_token": "t0k3n-zzz",
        },
        "rows": [f"echo {SECRET}", 3, None, True],
    }
    assert redaction.redact(spec) == {
        "model": MODEL,
        "api_base": "http://u:***@proxy:8080/v1",
        "parameters": {
            "temperature": 0,
            "max_tokens": 5,
            "extra_headers": {"Authorization": "***", "X-Trace": "1"},
            "api_key": "***",
            "access_token": "***",
        },
        "rows": ["echo ***", 3, None, True],
    }
    # settings kept for later use lose their secrets instead of keeping '***'
    assert redaction.drop_secrets(spec["parameters"]) == {
        "temperature": 0,
        "max_tokens": 5,
        "extra_headers": {"X-Trace": "1"},
    }
    assert SECRET in redaction.known_secrets()
    assert not any(redaction.is_secret_name(k) for k in ("max_tokens", "token_ids", "author"))


@pytest.mark.usefixtures("llm_path")
def test_no_key_reaches_the_store_the_dump_or_the_panel(
    store_url: str, fresh_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # keys that SECRET starts with, known from earlier calls: never a half mask
    redaction.add_secrets([SECRET[:n] for n in range(6, len(SECRET))])
    base = fresh_server.base_url

    # a provider's 401 that quotes the key: the error says what failed, not the key
    fresh_server.configure(api_key="sk-the-right-one")
    with pytest.raises(ModelCallError, match="authentication failed") as err:
        lo.complete(MODEL, "hi", api_base=base, cache=False)
    assert "Incorrect API key provided: ***" in str(err.value)
    assert SECRET not in str(err.value)
    fresh_server.configure(api_key=None)

    # a reply that echoes the key, cached
    fresh_server.configure(reply=lambda body: f"your key is {SECRET}")
    first = lo.complete(MODEL, "what is my key?", api_base=base)
    assert first.text == f"your key is {SECRET}"  # the caller sees what the model said...
    again = lo.complete(MODEL, "what is my key?", api_base=base)
    assert again.cached and again.text == "your key is ***"  # ...the store keeps it masked
    fresh_server.configure(reply=None)

    # %%prompt front matter that names a key
    version = lo.register_prompt(
        "keyed",
        "---\nparameters: {api_key: sk-test-SECRET123, temperature: 0}\n---\nuser:\nSay {{x}}",
    )
    assert version.parameters == {"temperature": 0}

    # a grid whose spec carries the key in extra_headers and in an api_base, and whose
    # "denied" model sends the environment's key and gets a 401 quoting it in every cell
    host = base.split("://", 1)[1]
    fresh_server.configure(api_key="sk-the-right-one")
    run = lo.evaluate(
        ["keyed"],
        [
            {
                "model": MODEL,
                "label": "ok",
                "api_base": base,
                "api_key": "sk-the-right-one",
                "parameters": {"extra_headers": {"X-Api-Key": SECRET}},
            },
            {"model": MODEL, "label": "denied", "api_base": base},
            {"model": MODEL, "label": "proxy", "api_base": f"http://user:{SECRET}@{host}"},
        ],
        [{"x": "one"}, {"x": "two"}],
        [{"contains": {"value": "{{x}}"}}],
        name="keys",
        progress=False,
        retries=0,
    )
    results = run.results
    by_label = {label: results.filter(results["model"] == label) for label in ("ok", "denied")}
    assert by_label["ok"]["output"].to_list() == ["echo: Say one", "echo: Say two"]
    denied = by_label["denied"]["error"].to_list()
    assert all("Incorrect API key provided: ***" in e for e in denied), denied
    assert results["error"].null_count() == 2  # the denied and proxy cells failed
    stored_spec = get_store().get_eval_run(run.id).spec
    assert stored_spec["models"][2]["api_base"] == f"http://user:***@{host}"
    assert stored_spec["models"][0]["parameters"]["extra_headers"] == {"X-Api-Key": "***"}

    # what every face shows: the panel's HTML and its widget data
    from llmops_nb import display
    from llmops_nb.views.evals import eval_view
    from llmops_nb.widgets.eval_grid import static_html

    view = eval_view(run, rows_per_cell=10)
    shown = static_html(view) + repr(view) + repr(display.panel(run)._repr_mimebundle_())
    assert "echo: Say one" in shown and "Incorrect API key provided" in shown
    assert SECRET not in shown

    tracing.flush()
    dumped = _whole_store(store_url)
    assert "echo: Say one" in dumped  # the dump really holds the results...
    assert SECRET not in dumped  # ...and never the key
    assert "SECRET123" not in dumped


def _whole_store(url: str) -> str:
    """Every byte of the store: the SQLite file and its WAL, or a pg_dump."""
    reset_store()  # close connections, so SQLite's WAL is checkpointed into the file too
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        return "".join(
            Path(p).read_bytes().decode("utf-8", "replace") for p in glob.glob(path + "*")
        )
    import conftest  # the session's PostgreSQL server (tests/pgserver.py), and its bindir

    assert conftest._pg is not None
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    out = subprocess.run(
        [f"{conftest._pg.bindir}/pg_dump", "--inserts", dsn],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_prose_about_tokens_is_not_masked() -> None:
    """Only credential-like values after Bearer/Basic/Token are masked, not the next word."""
    prose = "Token counting is easy; bearer bonds and Basic questions stay readable."
    assert redaction.redact(prose) == prose
    assert redaction.redact("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='") == (
        "curl -H 'Authorization: Basic ***'"
    )
    assert redaction.redact("token abcdefghijklmnopqrstuvwxyzABCD") == "token ***"
