"""promptfoo compatibility: assertion cases with promptfoo's verdicts (promptfoo_cases.py),
and real-world-shaped configs run end to end against the test server. A config either
gives promptfoo's cells and verdicts or is refused with one line naming what."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from promptfoo_cases import CASES, JUDGE_REPLIES

from llmops_nb.errors import LLMOpsError
from llmops_nb.evals import run_cell
from llmops_nb.evals.load import parse_spec
from llmops_nb.evals.spec import EvalSpecError
from llmops_nb.testing import serve


def _reply(outputs: dict[str, str]) -> Any:
    def reply(body: dict[str, Any]) -> str:
        text = str(body["messages"][-1]["content"])
        for keyword, answer in JUDGE_REPLIES.items():
            if keyword in text:
                return answer
        return outputs.get(text.strip(), f"unexpected prompt {text!r}")

    return reply


@pytest.fixture(scope="module")
def case_server() -> Iterator[Any]:
    outputs = {f"c{k}": output for k, (_, output, _) in enumerate(CASES)}
    with serve(reply=_reply(outputs)) as srv:
        yield srv


def _provider(srv: Any, model: str = "openai:gpt-4o-mini") -> dict[str, Any]:
    return {"id": model, "config": {"apiBaseUrl": srv.base_url, "apiKey": "sk-test"}}


def _case_config(srv: Any, tests: list[dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "prompts": ["{{case}}"],
        "providers": [_provider(srv)],
        "tests": tests,
    }
    if any("llm-rubric" in str(t) for t in tests):
        config["defaultTest"] = {"options": {"provider": _provider(srv, "openai:gpt-4o")}}
    return config


def _case_test(k: int) -> dict[str, Any]:
    test = copy.deepcopy(CASES[k][0])
    test["vars"] = {"case": f"c{k}", **test.get("vars", {})}
    return test


def test_assertion_cases_agree_with_promptfoo(case_server: Any) -> None:
    accepted, refused = [], []
    for k in range(len(CASES)):
        try:
            parse_spec(yaml.safe_dump(_case_config(case_server, [_case_test(k)])))
        except LLMOpsError as exc:
            refused.append((k, str(exc)))
        else:
            accepted.append(k)
    config = _case_config(case_server, [_case_test(k) for k in accepted])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_cell("cases", yaml.safe_dump(config), progress=False, cache=False)
    results = run.results.sort("row_index")
    verdicts = results["passed"].to_list()
    wrong = [(k, CASES[k]) for k, got in zip(accepted, verdicts, strict=True) if got != CASES[k][2]]
    agree = len(accepted) - len(wrong)
    print(
        f"\npromptfoo assertion cases: {agree}/{len(CASES)} agree, {len(wrong)} differ, "
        f"{len(refused)} refused"
    )
    assert not wrong, wrong
    assert not refused, refused


# --- real-world-shaped configs ---------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _providers(srv: Any, key: str = "providers") -> str:
    """The config line naming the test server as an OpenAI provider."""
    return f"{key}: {_flow([_provider(srv)])}"


def _flow(value: Any) -> str:
    """VALUE as one line of YAML flow style."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip() + "\n"


def _pf(path: Path) -> Any:
    return run_cell("pf", str(path), progress=False, cache=False)


def test_vars_files_file_vars_and_chat_prompt_file(tmp_path: Path) -> None:
    with serve() as srv:
        _write(tmp_path / "vars" / "vars_a.yaml", "topic: tides\n")
        _write(tmp_path / "vars" / "vars_b.yaml", "tone: calm\n")
        _write(tmp_path / "cfg" / "doc.txt", "The moon pulls the sea.")
        _write(tmp_path / "cfg" / "expected.txt", "echo: waves: The moon pulls the sea.")
        _write(
            tmp_path / "cfg" / "chat.yaml",
            "- role: system\n  content: 'Be {{tone}}.'\n"
            "- role: user\n  content: '{{topic}}: {{doc}}'\n",
        )
        config = _write(
            tmp_path / "cfg" / "promptfooconfig.yaml",
            "prompts: [file://chat.yaml]\n" + _providers(srv, "targets") + "tests:\n"
            "  - vars: ../vars/vars_*.yaml\n"
            "    assert: [{type: contains, value: tides}]\n"
            "  - vars: {topic: waves, tone: dry, doc: file://doc.txt}\n"
            "    assert: [{type: icontains, value: MOON}, {type: equals, value: file://expected.txt}]\n",
        )
        run = _pf(config)
        sent = [r["body"]["messages"] for r in srv.requests]
    assert sorted(m[1]["content"] for m in sent) == [
        "tides: ",  # test 1 has no doc: it renders empty, as in Nunjucks
        "waves: The moon pulls the sea.",
    ]
    assert {m[0]["content"] for m in sent} == {"Be calm.", "Be dry."}
    assert run.results.sort("row_index")["passed"].to_list() == [True, True]


def test_list_vars_expand_as_promptfoo_does(tmp_path: Path) -> None:
    with serve() as srv:
        config = _write(
            tmp_path / "c.yaml",
            "prompts: ['{{greeting}} in {{lang}}', 'Say {{greeting}} ({{lang}})']\n"
            + _providers(srv)
            + "tests:\n"
            "  - vars: {lang: [French, German], greeting: '{{word}}!', word: hello, "
            "shape: [{a: 1}, {a: 2}]}\n"
            "    assert: [{type: contains, value: '{{lang}}'}]\n",
        )
        run = _pf(config)
    results = run.results
    assert results.height == 2 * 2  # two lang values x two prompts; the object list is one value
    assert sorted(set(results["output"].to_list())) == [
        "echo: Say hello! (French)",
        "echo: Say hello! (German)",
        "echo: hello! in French",
        "echo: hello! in German",
    ]
    assert all(results["passed"].to_list())


def test_csv_special_columns(tmp_path: Path) -> None:
    _write(
        tmp_path / "t.csv",
        "q,__expected,__expected2,__threshold,__config:__expected2:threshold,__metadata:src,__metric\n"
        "hi,contains:   echo: hi  ,levenshtein: echo: hxx,,1,doc,greet\n"
        "bye,equals: nope,contains: bye,0.5,,doc,greet\n"
        "yo,grade: JUDGE_PASS polite,contains: yo,,,web,\n",
    )
    with serve(reply=_reply({})) as srv:
        srv.configure(
            reply=lambda body: (
                JUDGE_REPLIES["JUDGE_PASS"]
                if "JUDGE_PASS" in str(body["messages"])
                else "echo: " + str(body["messages"][-1]["content"])
            )
        )
        config = _write(
            tmp_path / "c.yaml",
            "prompts: ['{{q}}']\n"
            + _providers(srv)
            + "defaultTest: "
            + _flow(
                {
                    "options": {
                        "provider": {
                            "text": _provider(srv, "openai:gpt-4o"),
                            "embedding": "openai:text-embedding-3-small",
                        }
                    }
                }
            )
            + "tests: file://t.csv\n",
        )
        run = _pf(config)
    results = run.results.sort("row_index")
    # row 1: 'echo: hi' vs 'echo: hxx' is 2 edits, over the __config threshold 1 -> fails
    # row 2: equals fails, contains passes: score 0.5 >= __threshold 0.5 -> passes
    # row 3: grade: is llm-rubric, judged to pass
    assert results["passed"].to_list() == [False, True, True]
    assert results["test_score"].to_list() == [0.5, 0.5, 1.0]
    assert "greet" in run.scorers  # __metric names the row's assertions
    assert "greet" in run.summary().columns


def test_latency_boundaries_and_cached_latency_is_an_error(tmp_path: Path) -> None:
    with serve() as srv:
        config = (
            "prompts: ['{{q}}']\n" + _providers(srv) + "tests:\n"
            "  - vars: {q: fast}\n"
            "    assert: [{type: latency, threshold: 60000}]\n"
            "  - vars: {q: slow}\n"
            "    assert: [{type: latency, threshold: 0}]\n"
        )
        first = run_cell("lat", config, progress=False, cache=True)
        again = run_cell("lat", config, progress=False, cache=True)
        uncached = run_cell("lat", "evaluateOptions: {cache: false}\n" + config, progress=False)
    assert first.results.sort("row_index")["passed"].to_list() == [True, False]
    cached = again.results.sort("row_index")
    assert cached["cached"].to_list() == [True, True]
    assert cached["passed"].to_list() == [False, False]
    assert cached["latency_under"].to_list() == [None, None]  # an error, not a pass
    fresh = uncached.results.sort("row_index")  # evaluateOptions.cache: false is honoured
    assert fresh["cached"].to_list() == [False, False]
    assert fresh["passed"].to_list() == [True, False]


def test_refusals_name_what_is_not_supported(tmp_path: Path) -> None:
    base = "prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\n"
    _write(tmp_path / "gen.py", "def generate():\n    return []\n")
    one = "tests: [{vars: {q: a}, assert: [%s]}]"
    cases = [
        (
            base + one % "{type: javascript, value: 'output.length'}",
            "'javascript' is not supported",
        ),
        (base + "redteam: {purpose: x}", "promptfoo key 'redteam' .*is a promptfoo feature"),
        (base + "extensions: [file://x.js:hook]", "promptfoo key 'extensions' .*is a promptfoo"),
        (base + "tests: huggingface://datasets/x/y", "huggingface:// test sources"),
        (base + "tests: file://gen.py:generate", r"test generators \(gen.py:generate\)"),
        (
            base + one % "{type: equals, value: a, transform: 'output.split(1)'}",
            r"transform 'output.split\(1\)' is JavaScript",
        ),
        (base + one % "{type: equals, value: a, config: {x: 1}}", "key 'config' is not supported"),
        (base + one % "{type: llm-rubric, value: polite}", "llm-rubric needs a grading provider"),
        (
            "prompts: ['{{ q | dump }}']\nproviders: [openai:gpt-4o-mini]\ntests: [{vars: {q: a}}]",
            "the Nunjucks filter 'dump'",
        ),
    ]
    for text, message in cases:
        with pytest.raises(EvalSpecError, match=message):
            parse_spec(text, base_dir=tmp_path)
    filtered = (
        "prompts: [{raw: 'a {{q}}', label: A}, {raw: 'b {{q}}', label: B}]\n"
        "providers: [{id: openai:gpt-4o-mini, prompts: [A]}]\ntests: [{vars: {q: x}}]"
    )
    with pytest.raises(EvalSpecError, match="has a 'prompts:' filter"):
        parse_spec(filtered)
    custom = "prompts: ['{{q}}']\nproviders: [file://provider.js]\ntests: [{vars: {q: a}}]"
    with pytest.raises(EvalSpecError, match="custom providers"):
        parse_spec(custom)


def test_messages_that_used_to_mislead(tmp_path: Path) -> None:
    split = (
        "prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\n"
        "defaultTest: {options: {provider: "
        "{text: openai:gpt-4o, embedding: openai:text-embedding-3-small}}}\n"
        "tests: [{vars: {q: a}, assert: [{type: llm-rubric, value: polite}]}]"
    )
    spec = parse_spec(split)
    (judge,) = [s for s in spec.scorers if s.args["name"] == "judge"]
    assert judge.rows is not None
    assert judge.rows[0]["assertions"][0]["assertion"]["grader"]["model"] == "openai/gpt-4o"
    novars = (
        "prompts: ['Say hi']\nproviders: [openai:gpt-4o-mini]\n"
        "tests: [{assert: [{type: contains, value: hi}]}]"
    )
    assert parse_spec(novars).data == [{"test": "1"}]


def test_a_refused_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "c.yaml",
        "prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\n"
        "tests: [{vars: {q: a}, assert: [{type: python, value: 'len(output) > 1'}]}]\n",
    )
    done = subprocess.run(
        [sys.executable, "-m", "llmops_nb.cli", "eval", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "promptfoo assertion type 'python' is not supported" in done.stderr


def test_python_transforms_rubric_prompt_and_evaluate_spec(tmp_path: Path) -> None:
    import llmops_nb as lo

    _write(
        tmp_path / "shout.py",
        "def get_transform(output, context):\n"
        "    return output.upper() + '!' + context['vars']['q']\n"
        "def add_name(vars, context):\n"
        "    return {'name': vars['q'].title()}\n",
    )
    _write(tmp_path / "prompts.txt", "Hi {{name}}\n---\nBye {{name}}\n")
    judged: list[dict[str, Any]] = []

    def reply(body: dict[str, Any]) -> str:
        if body["model"] == "gpt-4o":
            judged.append(body)
            return '{"pass": true, "score": 1, "reason": "ok"}'
        return "echo: " + str(body["messages"][-1]["content"])

    with serve(reply=reply) as srv:
        grader = _flow(_provider(srv, "openai:gpt-4o")).strip()
        config = _write(
            tmp_path / "c.yaml",
            "outputPath: out.json\n"
            "prompts: [file://prompts.txt]\n" + _providers(srv) + "defaultTest:\n"
            "  options:\n"
            "    transformVars: file://shout.py:add_name\n"
            f"    provider: {grader}\n"
            "    rubricPrompt: 'GRADE {{output}} BY {{rubric}}'\n"
            "tests:\n"
            "  - vars: {q: ana}\n"
            "    assert:\n"
            "      - {type: equals, value: 'ECHO: HI ANA!ana', transform: file://shout.py}\n"
            "      - {type: llm-rubric, value: friendly}\n",
        )
        with pytest.warns(UserWarning, match="'outputPath' is not honoured"):
            run = lo.evaluate(spec=config, progress=False, cache=False)
        assert [p["label"] for p in run.spec["prompts"]] == ["prompts.txt:1", "prompts.txt:2"]
        results = run.results.sort("prompt")
        assert results["output"].to_list() == ["echo: Hi Ana", "echo: Bye Ana"]
        assert results["passed"].to_list() == [True, False]  # 'Bye' fails the equals
        assert len(judged) == 2
        assert judged[0]["messages"] == [
            {"role": "user", "content": f"GRADE {judged[0]['messages'][0]['content'][6:]}"}
        ]
        assert all(m["messages"][0]["content"].endswith(" BY friendly") for m in judged)
        assert all("temperature" not in m for m in judged)  # the grader's own settings only
        with pytest.warns(UserWarning, match="'outputPath'"):
            text = lo.evaluate(spec=config.read_text().replace("file://", f"file://{tmp_path}/"))
    assert text.results.height == 2
