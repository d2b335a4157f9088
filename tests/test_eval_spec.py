"""The %%eval YAML and promptfoo configs -> EvalSpec, and every kind of bad input: one
clear message, and nothing written to the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text

import llmops_nb as lo
from llmops_nb.datasets import DatasetError
from llmops_nb.errors import LLMOpsError, NotFound
from llmops_nb.evals import EvalSpecError, run_cell
from llmops_nb.evals.load import parse_spec
from llmops_nb.evals.promptfoo import parse_assertion_string, provider_to_model
from llmops_nb.llm.client import UnknownModel
from llmops_nb.store import get_store
from llmops_nb.testing import serve


def counts() -> tuple[int, int, int]:
    with get_store().engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() or 0)
            for t in ("eval_run", "eval_result", "dataset_version")
        )


def test_parse_our_yaml() -> None:
    df = pl.DataFrame({"q": ["a"]})
    spec = parse_spec(
        """name: faq
prompts: [support@1, support@production]
models:
  - openai/gpt-4o-mini
  - {model: openai/gpt-4o, label: big, api_base: "http://x/v1", parameters: {temperature: 0}}
data: df
scorers:
  - exact
  - contains: {value: "{{q}}"}
  - {type: regex, pattern: "\\\\d+"}
concurrency: 16
baseline: latest
""",
        namespace={"df": df},
    )
    assert [p.label for p in spec.prompts] == ["support@1", "support@production"]
    assert [(m.model, m.label, m.api_base, m.parameters) for m in spec.models] == [
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini", None, {}),
        ("openai/gpt-4o", "big", "http://x/v1", {"temperature": 0}),
    ]
    assert spec.data is df and spec.data_name == "df"
    assert [(s.kind, s.args) for s in spec.scorers] == [
        ("exact", {}),
        ("contains", {"value": "{{q}}"}),
        ("regex", {"pattern": "\\d+"}),
    ]
    assert (spec.name, spec.concurrency, spec.baseline) == ("faq", 16, "latest")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("prompts: [a\nmodels: [b]", r"malformed eval spec YAML on line 3"),
        ("prompts: [p]\ndata: x.csv\nmodles: [m]", r"unknown key 'modles' \(line 4\)"),
        ("data: x.csv\nmodels: [m]", r"the eval spec needs 'prompts'"),
        ("prompts: [p]\ndata: faq_df", r"data: no variable 'faq_df' in the notebook \(line 3\)"),
        (
            "prompts: [p]\ndata: x.csv\nconcurrency: lots",
            r"'concurrency' \(line 4\) must be a positive whole number",
        ),
        ("prompts: [p, p]\ndata: x.csv", r"the prompt 'p' appears twice"),
        ("prompts: ['bad name']\ndata: x.csv", r"invalid prompt name 'bad name'"),
        (
            "prompts: [p]\ndata: x.csv\nscorers: [{contains: 3}]",
            r"the arguments of 'contains' must be a mapping",
        ),
    ],
)
def test_malformed_specs(body: str, message: str) -> None:
    with pytest.raises(EvalSpecError, match=message):
        parse_spec(body, namespace={}, line_offset=1)


def test_bad_input_writes_nothing(openai_server: Any, tmp_path: Path) -> None:
    lo.register_prompt("support", "user:\nQ: {{question}}")
    ns = {
        "faq": pl.DataFrame({"question": ["hi"], "expected": ["echo: Q: hi"]}),
        "empty": pl.DataFrame({"question": []}),
    }
    model = f'{{model: openai/gpt-4o-mini, api_base: "{openai_server.base_url}", api_key: k}}'
    good = f"prompts: [support]\nmodels: [{model}]\ndata: faq\nscorers: [exact]\n"
    before = counts()
    cases: list[tuple[str, type[LLMOpsError], str]] = [
        (good.replace("support]", "nope@2]"), NotFound, "unknown prompt 'nope'"),
        (good.replace("support]", "support@7]"), NotFound, "prompt 'support' has no version 7"),
        (
            good.replace("openai/gpt-4o-mini", "nosuchprovider/x"),
            UnknownModel,
            "unknown model 'nosuchprovider/x'",
        ),
        (good.replace("[exact]", "[bleurt]"), LLMOpsError, "unknown scorer 'bleurt'"),
        (
            good.replace("[exact]", '[{contains: {value: "{{keyword}}"}}]'),
            LLMOpsError,
            "argument 'value' uses {{keyword}}, but the data has no column 'keyword' "
            "(columns: question, expected)",
        ),
        (
            good.replace("data: faq", "data: empty"),
            DatasetError,
            "dataset 'empty' is empty (0 rows",
        ),
        (
            good.replace("data: faq", "data: missing.csv"),
            DatasetError,
            "cannot read 'missing.csv': no such file",
        ),
        (good.replace("data: faq", "data: notes.txt"), DatasetError, "unknown file type '.txt'"),
        (good.replace("data: faq", "data: dataset:faq@3"), NotFound, "unknown dataset 'faq'"),
    ]
    for body, kind, message in cases:
        with pytest.raises(kind) as info:
            run_cell("faq", body, namespace=ns, progress=False)
        assert message in str(info.value), str(info.value)
        assert "\n" not in str(info.value)
    lo.register_prompt("needs", "user:\n{{question}} {{context}}")
    with pytest.raises(
        EvalSpecError,
        match=r"prompt needs uses \{\{context\}\}, but the data has no column 'context'",
    ):
        run_cell("faq", good.replace("support]", "needs]"), namespace=ns, progress=False)
    assert counts() == before
    run = run_cell("faq", good, namespace=ns, progress=False)
    assert run.summary()["exact"].to_list() == [1.0]


def test_promptfoo_config_with_tests_and_default_test(tmp_path: Path) -> None:
    def reply(body: dict[str, Any]) -> str:
        text_ = body["messages"][-1]["content"]
        if "French" in text_:
            return "Bonjour le monde" if "hello" in text_ else "Au revoir"
        return '{"lang": "de", "text": "Hallo"}'

    with serve(reply=reply) as srv:
        config = f"""
description: translations
prompts:
  - "Translate to French: {{{{input}}}}"
  - {{raw: "Translate to German as JSON: {{{{input}}}}", label: german-json}}
providers:
  - id: openai:chat:gpt-4o-mini
    label: mini
    config: {{apiBaseUrl: "{srv.base_url}", apiKey: sk-test, temperature: 0}}
defaultTest:
  assert:
    - type: not-contains
      value: "Error"
tests:
  - vars: {{input: hello world}}
    assert:
      - type: icontains
        value: bonjour
      - type: contains-any
        value: [Bonjour, Hallo]
  - vars: {{input: goodbye}}
    assert:
      - type: is-json
      - type: equals
        value: Au revoir
"""
        spec = parse_spec(config)
        assert spec.source == "promptfoo"
        assert [p.label for p in spec.prompts] == ["prompt1", "german-json"]
        assert [(m.model, m.label, m.api_base, m.parameters) for m in spec.models] == [
            ("openai/gpt-4o-mini", "mini", srv.base_url, {"temperature": 0})
        ]
        run = run_cell("translations", config, progress=False)
    results = run.results.sort("prompt", "row_index")
    assert run.scorers == ["not_contains", "icontains", "contains_any", "is_json", "exact"]
    french = results.filter(results["prompt"] == "prompt1")
    assert french["output"].to_list() == ["Bonjour le monde", "Au revoir"]
    assert french["not_contains"].to_list() == [1.0, 1.0]
    assert french["icontains"].to_list() == [1.0, None]  # only the first test asks for it
    assert french["is_json"].to_list() == [None, 0.0]
    assert french["exact"].to_list() == [None, 1.0]
    german = results.filter(results["prompt"] == "german-json")
    assert german["contains_any"].to_list() == [1.0, None]
    assert german["is_json"].to_list() == [None, 1.0]
    assert german["passed"].to_list() == [False, False]  # no bonjour; not 'Au revoir'
    assert "sk-test" not in str(run.spec)


def test_promptfoo_csv_tests_with_expected_columns(openai_server: Any, tmp_path: Path) -> None:
    (tmp_path / "tests.csv").write_text(
        "question,__expected1,__expected2,__description\n"
        'hi,contains: echo,"regex: ^echo: hi$",greeting\n'
        'bye,echo: bye,"not-icontains: HI",farewell\n'
    )
    (tmp_path / "prompt.txt").write_text("{{question}}")
    (tmp_path / "promptfooconfig.yaml").write_text(
        "prompts: [file://prompt.txt]\n"
        "providers:\n"
        "  - {id: openai:gpt-4o-mini, "
        f"config: {{apiBaseUrl: '{openai_server.base_url}', apiKey: k}}}}\n"
        "tests: file://tests.csv\n"
    )
    run = run_cell("pf", str(tmp_path / "promptfooconfig.yaml"), progress=False)
    results = run.results.sort("row_index")
    assert run.scorers == ["contains", "regex", "exact", "not_icontains"]
    assert results["output"].to_list() == ["echo: hi", "echo: bye"]
    assert results["contains"].to_list() == [1.0, None]
    assert results["regex"].to_list() == [1.0, None]
    assert results["exact"].to_list() == [None, 1.0]  # a plain value is an equals
    assert results["not_icontains"].to_list() == [None, 1.0]
    assert results["passed"].to_list() == [True, True]


def test_promptfoo_assertion_strings_and_providers() -> None:
    assert parse_assertion_string("contains: Hello") == {"type": "contains", "value": "Hello"}
    assert parse_assertion_string("similar(0.8): hi there") == {
        "type": "similar",
        "value": "hi there",
        "threshold": 0.8,
    }
    assert parse_assertion_string("is-json") == {"type": "is-json"}
    assert parse_assertion_string("Paris: France") == {"type": "equals", "value": "Paris: France"}
    assert parse_assertion_string("not-regex: \\d") == {"type": "not-regex", "value": "\\d"}
    assert provider_to_model("openai:gpt-4o-mini") == "openai/gpt-4o-mini"
    assert (
        provider_to_model("anthropic:messages:claude-3-5-haiku-latest")
        == "anthropic/claude-3-5-haiku-latest"
    )
    assert provider_to_model("ollama:chat:llama3") == "ollama_chat/llama3"
    assert provider_to_model("litellm:groq/llama3-8b") == "groq/llama3-8b"
    with pytest.raises(EvalSpecError, match="promptfoo provider 'exec:./run.sh' is not supported"):
        provider_to_model("exec:./run.sh")


def test_unsupported_promptfoo_assertion_is_refused_by_name(tmp_path: Path) -> None:
    before = counts()
    config = """prompts: ["{{q}}"]
providers: [openai:gpt-4o-mini]
tests:
  - vars: {q: hi}
    assert:
      - type: contains
        value: hi
      - type: javascript
        value: output.length < 10
"""
    with pytest.raises(EvalSpecError) as info:
        run_cell("pf", config, progress=False)
    message = str(info.value)
    assert message.startswith(
        "tests[0].assert[1]: promptfoo assertion type 'javascript' is not supported"
    )
    assert "refused rather than skipping it" in message
    (tmp_path / "t.csv").write_text("q,__expected\nhi,python: len(output) < 3\n")
    (tmp_path / "c.yaml").write_text(
        "prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\ntests: file://t.csv\n"
    )
    with pytest.raises(EvalSpecError, match="promptfoo assertion type 'python' is not supported"):
        run_cell("pf", str(tmp_path / "c.yaml"), progress=False)
    assert counts() == before
