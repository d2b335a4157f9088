"""The magics in a real IPython shell: what a notebook user types, and what they see."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

import llmops_nb as lo
from llmops_nb import config

BODY = """---
description: Reply to a support question
parameters: {temperature: 0.2, max_tokens: 200}
sample: {product: Acme, question: How do I reset my password?}
---
system:
You are a concise support agent for {{product}}.
user:
{{question}}
"""


def the_shell() -> InteractiveShell:
    """The test session's one IPython shell (start_ipython returns None once started)."""
    shell = start_ipython() or InteractiveShell.instance()
    assert shell is not None
    return shell


@pytest.fixture
def ip(capsys: pytest.CaptureFixture[str]) -> Iterator[InteractiveShell]:
    shell = the_shell()
    shell.run_line_magic("load_ext", "llmops_nb")
    capsys.readouterr()
    yield shell
    shell.run_line_magic("unload_ext", "llmops_nb")
    for name in ("support_reply", "sr", "greeting"):
        shell.user_ns.pop(name, None)


def run_cell(shell: InteractiveShell, source: str) -> Any:
    result = shell.run_cell(source, store_history=False)
    return result


def bundle(obj: Any) -> dict[str, Any]:
    data = obj._repr_mimebundle_()
    return data[0] if isinstance(data, tuple) else data


def test_load_ext_prints_one_banner_line(capsys: pytest.CaptureFixture[str]) -> None:
    the_shell().run_line_magic("reload_ext", "llmops_nb")
    out = capsys.readouterr().out.strip().splitlines()
    store = config.mask_url(config.store_url())
    assert out == [f"llmops_nb {lo.__version__} · store {store} · project default"]


def test_banner_masks_a_store_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOPS_NB_STORE", "postgresql+psycopg://ann:s3cret@db.local/exp")
    the_shell().run_line_magic("reload_ext", "llmops_nb")
    out = capsys.readouterr().out
    assert "postgresql+psycopg://ann:***@db.local/exp" in out and "s3cret" not in out


def test_prompt_cell_creates_binds_and_shows_the_panel(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    panel = ip.run_cell_magic("prompt", "support_reply", BODY)
    assert capsys.readouterr().out.strip() == "created: support_reply v1"
    version = ip.user_ns["support_reply"]
    assert isinstance(version, lo.PromptVersion)
    assert (version.name, version.version, version.model) == ("support_reply", 1, None)
    data = bundle(panel)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == "created: support_reply v1"
    html = data["text/html"]
    assert "support_reply" in html and "v1" in html
    # sample variables are rendered into the messages the panel shows
    assert "You are a concise support agent for Acme." in html
    assert panel.data["messages"][1] == {"role": "user", "content": "How do I reset my password?"}


def test_rerunning_an_unchanged_cell_says_so_and_a_change_shows_the_diff(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell_magic("prompt", "support_reply", BODY)
    ip.run_cell_magic("prompt", "support_reply", BODY)
    assert capsys.readouterr().out.splitlines()[-1] == "unchanged: support_reply v1"
    panel = ip.run_cell_magic(
        "prompt", "support_reply -m 'more friendly'", BODY.replace("concise", "friendly")
    )
    assert capsys.readouterr().out.strip() == "created: support_reply v2"
    assert panel.data["previous"] == 1
    assert "+You are a friendly support agent" in panel.data["diff"]
    html = bundle(panel)["text/html"]
    assert 'class="lonb-diff-add">+You are a friendly support agent for {{product}}.' in html
    assert [h["version"] for h in panel.data["history"]] == [2, 1]
    assert panel.data["history"][0]["message"] == "more friendly"


def test_as_and_alias_options(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell_magic("prompt", "support_reply --as sr --alias production", BODY)
    assert "support_reply" not in ip.user_ns
    assert ip.user_ns["sr"].version == 1
    assert "support_reply@production -> v1" in capsys.readouterr().out
    assert lo.prompt("support_reply@production").version == 1


def test_prompt_line_forms(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell_magic("prompt", "greeting", "Hello {{name}}")
    ip.run_cell_magic("prompt", "greeting", "Hi {{name}}!")
    capsys.readouterr()

    listing = ip.run_line_magic("prompt", "list")
    assert listing.select("name", "latest").rows() == [("greeting", 2)]
    history = ip.run_line_magic("prompt", "history greeting")
    assert history["version"].to_list() == [1, 2]
    shown = ip.run_line_magic("prompt", "show greeting@1")
    assert shown.data["version"] == 1 and shown.data["name"] == "greeting"
    diff = ip.run_line_magic("prompt", "diff greeting 1 2")
    assert repr(diff).splitlines()[-2:] == ["-Hello {{name}}", "+Hi {{name}}!"]
    assert "lonb-diff-del" in diff._repr_html_()

    ip.run_line_magic("prompt", "alias greeting production 1")
    ip.run_line_magic("prompt", "alias greeting production 2")
    ip.run_line_magic("prompt", "rollback greeting production")
    assert capsys.readouterr().out.splitlines() == [
        "greeting@production -> v1",
        "greeting@production -> v2 (was v1)",
        "greeting@production rolled back: v2 -> v1",
    ]
    assert lo.prompt("greeting@production").version == 1


def test_llmops_project_switches_the_namespace(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("llmops", "project team-a")
    assert capsys.readouterr().out.strip() == "project team-a"
    ip.run_cell_magic("prompt", "greeting", "Hello")
    assert lo.prompt("greeting").project == "team-a"
    ip.run_line_magic("llmops", "project default")
    assert lo.prompts().height == 0


def test_settings_are_config_traits(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "LLMOps.cache = False")
    ip.run_line_magic("config", "LLMOps.concurrency = 32")
    ip.run_line_magic("config", "LLMOps.default_model = 'openai/test'")
    ip.run_line_magic("config", "LLMOps.display = False")
    assert (config.settings.cache, config.settings.concurrency) == (False, 32)
    assert config.settings.default_model == "openai/test"
    # display off: the cell binds the version and shows no panel
    assert ip.run_cell_magic("prompt", "greeting", "Hello") is None
    assert ip.user_ns["greeting"].version == 1


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%%prompt\nhello", "UsageError: %%prompt needs a name"),
        ("%%prompt bad name\nhello", "InvalidName: invalid prompt name 'bad name'"),
        (
            "%%prompt x\n---\nparameters: {a: 1\n---\nhi",
            "PromptSyntaxError: malformed front matter",
        ),
        (
            "%%prompt x\n---\nmodle: x\n---\nhi",
            "PromptSyntaxError: unknown front matter key 'modle'",
        ),
        ("%%prompt x\nrobot:\nhi", "PromptSyntaxError: unknown role marker 'robot:' on line 1"),
        ("%%prompt x\n{% if %}", "PromptSyntaxError: template syntax error on line 1"),
        ("%prompt show nope", "NotFound: unknown prompt 'nope' in project 'default'"),
        ("%prompt frobnicate", "UsageError: usage:"),
    ],
)
def test_bad_input_is_one_line_without_a_traceback(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], cell: str, expected: str
) -> None:
    result = run_cell(ip, cell)
    assert result.error_in_exec is not None or result.error_before_exec is not None
    captured = capsys.readouterr()
    text = _strip_ansi(captured.out + captured.err)
    assert expected in text
    assert "Traceback" not in text and "File " not in text
    assert lo.prompts().height == 0  # nothing written


def test_missing_variable_in_a_run_names_it(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cell(ip, "%%prompt greeting --run\nHello {{who}}")
    text = _strip_ansi(capsys.readouterr().out)
    assert "MissingVariable: missing variable 'who' for prompt greeting; pass who=..." in text
    assert lo.prompts().height == 0  # checked before writing: no version was created
    ip.user_ns["who"] = "Ada"  # variables also come from the notebook namespace
    panel = ip.run_cell_magic("prompt", "greeting --run", "Hello {{who}}")
    assert panel.data["messages"] == [{"role": "user", "content": "Hello Ada"}]
    assert lo.prompt("greeting").version == 1
    ip.user_ns.pop("who")


def test_a_sample_missing_a_variable_creates_nothing(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cell(ip, "%%prompt greeting\n---\nsample: {nme: Ada}\n---\nHello {{name}}")
    assert "missing variable 'name' for prompt greeting" in _strip_ansi(capsys.readouterr().out)
    assert lo.prompts().height == 0


def test_a_prompt_without_sample_shows_its_template(ip: InteractiveShell) -> None:
    panel = ip.run_cell_magic("prompt", "greeting", "system:\nBe <brief>.\nuser:\n{{q}}")
    assert panel.data["template"] == "system:\nBe <brief>.\nuser:\n{{q}}"
    html = bundle(panel)["text/html"]
    assert "<h4>Template</h4>" in html and "Be &lt;brief&gt;." in html
    assert "no model" in html  # nothing was called and the prompt names no model


def test_service_objects_display_as_their_panels(ip: InteractiveShell) -> None:
    """display.py's formatters: a PromptVersion or a Trace shown in a cell is its panel."""
    ip.run_cell_magic("prompt", "greeting", "Hello {{who}}")
    data, _ = ip.display_formatter.format(lo.prompt("greeting"))
    assert "application/vnd.jupyter.widget-view+json" in data
    assert '<span class="lonb-title">greeting</span>' in data["text/html"]

    @lo.trace(name="shown")
    def shown() -> int:
        return 1

    shown()
    data, _ = ip.display_formatter.format(lo.last_trace())
    assert "shown" in data["text/plain"] and "lotv-panel" in data["text/html"]
    panel = ip.run_line_magic("trace", "")
    assert panel.trace_id == lo.last_trace().id
    assert ip.run_line_magic("trace", panel.trace_id[:8]).trace_id == panel.trace_id
    ip.run_line_magic("config", "LLMOps.display = False")
    try:
        data, _ = ip.display_formatter.format(lo.prompt("greeting"))
        assert set(data) == {"text/plain"}
    finally:
        ip.run_line_magic("config", "LLMOps.display = True")


def test_untrusted_text_is_escaped_in_the_static_panel(ip: InteractiveShell) -> None:
    body = "---\nsample: {x: '<img src=x onerror=alert(1)>'}\n---\n<script>alert(1)</script> {{x}}"
    html = bundle(ip.run_cell_magic("prompt", "xss", body))["text/html"]
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_the_panel_widget_answers_a_diff_request_from_the_view(ip: InteractiveShell) -> None:
    ip.run_cell_magic("prompt", "greeting", "one")
    ip.run_cell_magic("prompt", "greeting", "two")
    panel = ip.run_cell_magic("prompt", "greeting", "three")
    sent: list[dict[str, Any]] = []
    panel.send = lambda content, buffers=None: sent.append(content)  # capture the reply
    panel._on_message(panel, {"type": "diff", "against": 1}, [])
    assert sent[0]["against"] == 1
    assert sent[0]["diff"].splitlines()[-2:] == ["-one", "+three"]


def test_load_ext_imports_no_heavy_library() -> None:
    """%load_ext in a fresh interpreter imports none of the heavy libraries."""
    code = (
        "import sys, json\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'llmops_nb')\n"
        "heavy = ['litellm', 'torch', 'transformers', 'peft', 'altair', 'hnswlib',\n"
        "         'sqlalchemy', 'polars', 'opentelemetry.sdk', 'anywidget']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_run_shows_the_traced_response_with_latency_tokens_and_cost(
    ip: InteractiveShell,
    openai_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    panel = ip.run_cell_magic("prompt", "support_reply --model openai/gpt-4o-mini --run", BODY)
    response = panel.data["response"]
    assert response["text"] == "echo: How do I reset my password?"
    assert response["model"] == "openai/gpt-4o-mini"
    assert response["input_tokens"] > 0 and response["output_tokens"] > 0
    assert response["cost"] > 0 and response["latency_ms"] > 0
    trace = lo.get_trace(response["trace_id"])
    assert [s.kind for s in trace.spans] == ["llm"]
    html = bundle(panel)["text/html"]
    assert "echo: How do I reset my password?" in html and "tokens" in html
    # the cache (on by default) answers a rerun; the panel says so
    again = ip.run_cell_magic("prompt", "support_reply --model openai/gpt-4o-mini --run", BODY)
    assert again.data["response"]["cached"] is True
    assert "unchanged: support_reply v1" in capsys.readouterr().out


def test_the_header_names_the_model_actually_called(
    ip: InteractiveShell, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt with no model runs on the default model: the header says which."""
    monkeypatch.setenv("OPENAI_API_BASE", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    ip.run_line_magic("config", "LLMOps.default_model = 'openai/gpt-4o-mini'")
    try:
        panel = ip.run_cell_magic("prompt", "greeting --run", "Hello")
    finally:
        ip.run_line_magic("config", "LLMOps.default_model = ''")
    assert panel.data["model"] is None and panel.data["called_model"] == "openai/gpt-4o-mini"
    html = bundle(panel)["text/html"]
    assert '<span class="lonb-muted"> openai/gpt-4o-mini' in html and "no model" not in html


def test_a_failing_model_call_is_shown_in_the_panel_not_raised(
    ip: InteractiveShell, fresh_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", fresh_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fresh_server.configure(rate_500=1.0)
    ip.run_line_magic("config", "LLMOps.cache = False")
    panel = ip.run_cell_magic("prompt", "greeting --model openai/gpt-4o-mini --run", "Hello")
    assert panel.data["response"]["error"]
    assert "<script>" not in bundle(panel)["text/html"]
    assert lo.prompt("greeting").version == 1  # the version is registered all the same
