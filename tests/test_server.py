"""The sidebar's server extension: real jupyter_server, real store (SQLite and PostgreSQL),
requests through jp_fetch."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import select
from tornado.httpclient import HTTPClientError, HTTPResponse

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.store import get_store
from llmops_nb.store import models as m

T0_NS = 1_800_000_000 * 10**9  # 2027-01-15, a fixed clock for the seeded traces


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}


async def get(jp_fetch: Any, path: str, **params: Any) -> Any:
    response = await jp_fetch("llmops-nb", "api", *path.split("/"), params=params)
    assert response.code == 200
    return json.loads(response.body)


async def error(jp_fetch: Any, path: str, method: str = "GET", **kwargs: Any) -> HTTPResponse:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("llmops-nb", "api", *path.split("/"), method=method, **kwargs)
    assert info.value.response is not None
    return info.value.response


def message(response: HTTPResponse) -> str:
    return json.loads(response.body)["message"]


# --- seeding: the rows kernels write ---------------------------------------------------


def seed_traces(n: int, project: str = "default") -> list[str]:
    """n traces, one second apart; every third fails; each has a root, a child and a grandchild."""
    store = get_store()
    pid = store.project_id(project)
    ids = [f"{i + 1:032x}" for i in range(n)]

    def write(s: Any) -> None:
        for i, tid in enumerate(ids):
            start = T0_NS + i * 10**9
            failed = i % 3 == 2
            s.add(
                m.Trace(
                    id=tid,
                    project_id=pid,
                    name="answer" if i % 2 == 0 else "retrieve_and_answer",
                    status="error" if failed else "ok",
                    error="boom" if failed else None,
                    start_ns=start,
                    end_ns=start + 250_000_000,
                    n_spans=3,
                    input_tokens=10,
                    output_tokens=5,
                    cost=0.001,
                )
            )
            root, child, leaf = f"{i:08x}0000000a", f"{i:08x}0000000b", f"{i:08x}0000000c"
            s.add_all(
                [
                    m.Span(id=leaf, trace_id=tid, parent_id=child, name="llm", kind="llm",
                           start_ns=start + 20_000_000, end_ns=start + 200_000_000,
                           inputs={"messages": [{"role": "user", "content": "hi"}]},
                           outputs="<img src=x onerror=alert(1)>",
                           attributes={"gen_ai.request.model": "openai/gpt-4o-mini"}),
                    m.Span(id=root, trace_id=tid, parent_id=None, name="answer", kind="chain",
                           start_ns=start, end_ns=start + 250_000_000),
                    m.Span(id=child, trace_id=tid, parent_id=root, name="generate", kind="chain",
                           start_ns=start + 10_000_000, end_ns=start + 240_000_000),
                ]
            )  # fmt: skip

    store.write(write)
    return ids


def seed_eval_run(project: str = "default", name: str = "faq") -> int:
    """A finished 2 prompts x 2 models x 3 rows grid with one failed call."""
    store = get_store()
    pid = store.project_id(project)

    spec = {
        "prompts": [{"label": "support@1"}, {"label": "support@2"}],
        "models": [{"label": "gpt"}, {"label": "local"}],
        "scorers": [{"name": "exact", "threshold": 1.0}, {"name": "rouge_l", "threshold": 0.5}],
    }

    def write(s: Any) -> int:
        run = m.EvalRun(
            project_id=pid, name=name, status="done", n_cells=12, author="tester", spec=spec
        )
        s.add(run)
        s.flush()
        for p_i, prompt in enumerate(["support@1", "support@2"]):
            for model in ["gpt", "local"]:
                for row in range(3):
                    ok = p_i == 1 or row == 0  # v2 passes everything, v1 one row in three
                    failed = prompt == "support@1" and model == "local" and row == 2
                    s.add(
                        m.EvalResult(
                            run_id=run.id,
                            prompt_ref=prompt,
                            model=f"openai/{model}",
                            model_label=model,
                            row_index=row,
                            inputs={"question": f"q{row}"},
                            expected=f"a{row}",
                            output=None if failed else f"answer {row}",
                            error="timeout" if failed else None,
                            scores={} if failed else {"exact": ok, "rouge_l": 0.5 + 0.5 * ok},
                            latency_ms=100.0 * (row + 1),
                            input_tokens=10,
                            output_tokens=5,
                            cost=0.01,
                        )
                    )
        return run.id

    return store.write(write)


def seed_finetune(project: str = "default") -> int:
    """A finished job with 30 metric rows and its model, written through the store's own
    fine-tune API (the calls the worker makes), not raw rows."""
    store = get_store()
    job = store.create_finetune_job(
        project, "support-ft", base="tiny-llama", method="lora", backend="peft", params={"r": 16}
    )
    store.update_finetune_job(job.id, status="running", only_from=("queued",))
    store.add_finetune_metrics(
        job.id, [{"step": step, "loss": 3.0 / step, "lr": 2e-4} for step in range(1, 31)]
    )
    store.update_finetune_job(job.id, status="completed", only_from=("running",))
    store.register_model(
        project, "support-ft", base="tiny-llama", backend="peft", job_id=job.id,
        metrics={"loss": 0.1},
    )  # fmt: skip
    return job.id


# --- authentication ------------------------------------------------------------------


ROUTES = [
    "projects",
    "changes",
    "prompts",
    "prompts/p/versions",
    "prompts/p/diff",
    "prompts/p/aliases",
    "evals",
    "evals/1",
    "evals/1/results",
    "traces",
    "traces/abc",
    "finetunes",
    "finetunes/1",
    "finetunes/1/metrics",
    "models",
]


@pytest.mark.parametrize("token", ["", "token wrong"])
async def test_every_route_refuses_requests_without_valid_auth(jp_fetch: Any, token: str) -> None:
    for path in ROUTES:
        response = await error(jp_fetch, path, headers={"Authorization": token})
        assert response.code == 403, path
    for path in ["prompts/p/aliases", "traces/abc/feedback"]:
        response = await error(
            jp_fetch, path, method="POST", body="{}", headers={"Authorization": token}
        )
        assert response.code == 403, path


async def test_cookie_authenticated_writes_need_the_xsrf_token(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    """A browser session (login cookie) cannot POST without the _xsrf token: Jupyter's rule."""
    tid = seed_traces(1)[0]
    login = await jp_fetch(
        "login",
        params={"token": jp_serverapp.identity_provider.token},
        follow_redirects=False,
        raise_error=False,
    )
    cookies = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert cookies.startswith("username-")
    xsrf = "a1b2c3d4e5f6"  # the double-submit token a Lab page would hold in its _xsrf cookie
    body = json.dumps({"score": 1})
    refused = await error(
        jp_fetch, f"traces/{tid}/feedback", method="POST", body=body,
        headers={"Authorization": "", "Cookie": cookies},
    )  # fmt: skip
    assert refused.code == 403
    accepted = await jp_fetch(
        "llmops-nb", "api", "traces", tid, "feedback", method="POST", body=body,
        headers={"Authorization": "", "Cookie": f"{cookies}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )  # fmt: skip
    assert accepted.code == 201


# --- projects, prompts ---------------------------------------------------------------


async def test_projects_are_listed_by_name_and_paginated(jp_fetch: Any) -> None:
    for name in ["zeta", "alpha", "default", "beta"]:
        get_store().project_id(name)
    first = await get(jp_fetch, "projects", limit=2)
    assert [p["name"] for p in first["items"]] == ["alpha", "beta"]
    assert first["total"] == 4 and first["current"] == "default"
    second = await get(jp_fetch, "projects", limit=2, offset=2)
    assert [p["name"] for p in second["items"]] == ["default", "zeta"]


async def test_prompts_versions_diff_and_aliases(jp_fetch: Any) -> None:
    lo.register_prompt("support_reply", "system:\nBe concise.\nuser:\n{{question}}")
    lo.register_prompt("support_reply", "system:\nBe concise and kind.\nuser:\n{{question}}")
    lo.register_prompt("greeting", "Say hi to {{name}}")
    lo.set_alias("support_reply", "production", 1)

    prompts = await get(jp_fetch, "prompts")
    assert [(p["name"], p["latest"]) for p in prompts["items"]] == [
        ("greeting", 1),
        ("support_reply", 2),
    ]
    assert prompts["items"][1]["aliases"] == "production=v1"
    assert [p["name"] for p in (await get(jp_fetch, "prompts", limit=1, offset=1))["items"]] == [
        "support_reply"
    ]

    versions = await get(jp_fetch, "prompts/support_reply/versions")
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert "Be concise and kind." in versions["items"][0]["template"]
    page = await get(jp_fetch, "prompts/support_reply/versions", limit=1, offset=1)
    assert [v["version"] for v in page["items"]] == [1] and page["total"] == 2

    diff = await get(jp_fetch, "prompts/support_reply/diff")
    assert (diff["from"], diff["to"]) == (1, 2)
    assert "-Be concise.\n" in diff["diff"] and "+Be concise and kind.\n" in diff["diff"]
    same = await get(jp_fetch, "prompts/support_reply/diff", a=2, b=2)
    assert same["diff"] == ""

    aliases = await get(jp_fetch, "prompts/support_reply/aliases")
    assert aliases["aliases"] == {"production": 1}
    assert aliases["log"]["items"][0]["to_version"] == 1

    moved = await jp_fetch(
        "llmops-nb", "api", "prompts", "support_reply", "aliases",
        method="POST", body=json.dumps({"alias": "production", "version": 2}),
    )  # fmt: skip
    assert json.loads(moved.body) == {
        "name": "support_reply", "alias": "production", "from": 1, "to": 2
    }  # fmt: skip
    assert lo.prompt("support_reply@production").version == 2
    back = await jp_fetch(
        "llmops-nb", "api", "prompts", "support_reply", "aliases",
        method="POST", body=json.dumps({"alias": "production", "rollback": True}),
    )  # fmt: skip
    assert json.loads(back.body)["to"] == 1
    log = (await get(jp_fetch, "prompts/support_reply/aliases"))["log"]
    assert [(e["action"], e["to_version"]) for e in log["items"]] == [
        ("rollback", 1),
        ("set", 2),
        ("set", 1),
    ]


async def test_unknown_prompts_are_404_and_bad_alias_moves_400(jp_fetch: Any) -> None:
    lo.register_prompt("greeting", "Say hi to {{name}}")
    response = await error(jp_fetch, "prompts/nope/versions")
    assert response.code == 404 and "unknown prompt 'nope'" in message(response)
    response = await error(jp_fetch, "prompts/greeting/diff", params={"b": 7})
    assert response.code == 404 and "no version 7" in message(response)
    for body, text in [
        ({"alias": "prod", "version": "2"}, "version must be a positive integer"),
        ({"alias": "prod", "version": 10**30}, "version must be a positive integer up to 2**62"),
        ({"alias": "bad alias", "version": 1}, "invalid alias name"),
        ("not json", "must be JSON"),
    ]:
        raw = body if isinstance(body, str) else json.dumps(body)
        response = await error(jp_fetch, "prompts/greeting/aliases", method="POST", body=raw)
        assert response.code == 400 and text in message(response)


# --- evaluations ---------------------------------------------------------------------


async def test_eval_runs_summary_and_results(jp_fetch: Any, store_url: str) -> None:
    first = seed_eval_run(name="smoke")
    run_id = seed_eval_run(name="faq")
    runs = await get(jp_fetch, "evals")
    assert [r["name"] for r in runs["items"]] == ["faq", "smoke"] and runs["total"] == 2
    assert (await get(jp_fetch, "evals", limit=1, offset=1))["items"][0]["id"] == first

    detail = await get(jp_fetch, f"evals/{run_id}")
    assert detail["name"] == "faq" and detail["status"] == "done" and detail["done"] == 12
    assert detail["thresholds"] == {"exact": 1.0, "rouge_l": 0.5}
    # cells in the spec's order, as the notebook panel lists them
    assert [(c["prompt"], c["model"]) for c in detail["cells"]] == [
        ("support@1", "gpt"), ("support@1", "local"), ("support@2", "gpt"), ("support@2", "local")
    ]  # fmt: skip
    cells = {(c["prompt"], c["model"]): c for c in detail["cells"]}
    assert set(cells) == {(p, mo) for p in ["support@1", "support@2"] for mo in ["gpt", "local"]}
    assert cells[("support@2", "gpt")]["scores"] == {"exact": 1.0, "rouge_l": 1.0}
    assert cells[("support@2", "gpt")]["pass_rate"] == 1.0
    assert cells[("support@1", "gpt")]["scores"]["exact"] == pytest.approx(1 / 3)
    assert cells[("support@1", "local")]["errors"] == 1
    # A failed call scores 0 on every scorer: exact (1 + 0 + 0) / 3, rouge_l (1 + 0.5 + 0) / 3.
    assert cells[("support@1", "local")]["scores"]["exact"] == pytest.approx(1 / 3)
    assert cells[("support@1", "local")]["scores"]["rouge_l"] == pytest.approx(0.5)
    assert cells[("support@1", "gpt")]["pass_rate"] == pytest.approx(1 / 3)
    assert cells[("support@1", "gpt")]["latency_p50_ms"] == 200.0
    assert cells[("support@1", "gpt")]["latency_p95_ms"] == pytest.approx(290.0)  # linear
    assert cells[("support@1", "gpt")]["cost"] == pytest.approx(0.03)

    page = await get(jp_fetch, f"evals/{run_id}/results", limit=5)
    assert page["total"] == 12 and len(page["items"]) == 5
    assert [(r["prompt_ref"], r["model_label"], r["row_index"]) for r in page["items"][:4]] == [
        ("support@1", "gpt", 0),
        ("support@1", "gpt", 1),
        ("support@1", "gpt", 2),
        ("support@1", "local", 0),
    ]
    cell = await get(jp_fetch, f"evals/{run_id}/results", prompt="support@1", model="local")
    assert cell["total"] == 3 and cell["items"][2]["error"] == "timeout"

    assert (await error(jp_fetch, "evals/999")).code == 404
    assert (await error(jp_fetch, f"evals/{10**30}")).code == 404
    response = await error(jp_fetch, "evals/abc/results")
    assert response.code == 400 and "eval run id must be an integer" in message(response)


# --- traces --------------------------------------------------------------------------


async def test_traces_latest_first_paginated_and_filtered(jp_fetch: Any, store_url: str) -> None:
    ids = seed_traces(120)
    first = await get(jp_fetch, "traces")
    assert first["total"] == 120 and len(first["items"]) == 50
    assert [t["id"] for t in first["items"][:3]] == [ids[119], ids[118], ids[117]]
    latest = first["items"][0]
    assert latest["duration_ms"] == 250.0 and latest["start_ms"] == (T0_NS + 119 * 10**9) / 1e6
    last = await get(jp_fetch, "traces", limit=50, offset=100)
    assert len(last["items"]) == 20 and last["items"][-1]["id"] == ids[0]

    errors = await get(jp_fetch, "traces", status="error")
    assert errors["total"] == 40 and {t["status"] for t in errors["items"]} == {"error"}
    named = await get(jp_fetch, "traces", name="answer", limit=500)
    assert named["total"] == 60 and {t["name"] for t in named["items"]} == {"answer"}
    since_iso = datetime.fromtimestamp(T0_NS / 1e9 + 110, UTC).isoformat()
    recent = await get(jp_fetch, "traces", since=since_iso)
    assert recent["total"] == 10
    until_ms = T0_NS / 1e6 + 4_500
    early = await get(jp_fetch, "traces", until=str(until_ms), status="ok")
    assert [t["id"] for t in early["items"]] == [ids[4], ids[3], ids[1], ids[0]]

    other = await get(jp_fetch, "traces", project="elsewhere")
    assert other == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_one_trace_has_its_span_tree_with_output_as_plain_text(jp_fetch: Any) -> None:
    tid = seed_traces(2)[1]
    tracing.feedback(tid, 1, "<b>good</b>")
    trace = await get(jp_fetch, f"traces/{tid}")
    assert trace["id"] == tid and trace["n_spans"] == 3
    assert [(f["score"], f["comment"]) for f in trace["feedback"]] == [(1, "<b>good</b>")]
    [root] = trace["spans"]
    assert root["name"] == "answer" and root["offset_ms"] == 0 and root["duration_ms"] == 250
    [child] = root["children"]
    [leaf] = child["children"]
    assert (child["name"], leaf["name"], leaf["kind"]) == ("generate", "llm", "llm")
    assert leaf["offset_ms"] == 20.0 and leaf["duration_ms"] == 180.0
    assert leaf["outputs"] == "<img src=x onerror=alert(1)>"  # stored and served verbatim
    assert leaf["attributes"]["gen_ai.request.model"] == "openai/gpt-4o-mini"

    assert (await error(jp_fetch, f"traces/{'f' * 32}")).code == 404
    response = await error(jp_fetch, "traces/not-hex!")
    assert response.code == 400 and "hexadecimal" in message(response)


async def test_feedback_is_stored_and_checked(jp_fetch: Any) -> None:
    tid = seed_traces(1)[0]
    response = await jp_fetch(
        "llmops-nb", "api", "traces", tid, "feedback",
        method="POST", body=json.dumps({"score": -1, "comment": "wrong product"}),
    )  # fmt: skip
    assert response.code == 201
    with get_store().session() as s:
        rows = s.exec(select(m.Feedback).where(m.Feedback.trace_id == tid)).all()
    assert [(f.score, f.comment, f.author) for f in rows] == [(-1, "wrong product", "tester")]

    bad = await error(
        jp_fetch, f"traces/{tid}/feedback", method="POST", body=json.dumps({"score": 5})
    )
    assert bad.code == 400 and "score must be 1" in message(bad)
    unknown = await error(
        jp_fetch, f"traces/{'e' * 32}/feedback", method="POST", body=json.dumps({"score": 1})
    )
    assert unknown.code == 404
    long = json.dumps({"score": 1, "comment": "x" * 10_001})
    too_long = await error(jp_fetch, f"traces/{tid}/feedback", method="POST", body=long)
    assert too_long.code == 400 and "at most 10,000 characters" in message(too_long)
    with get_store().session() as s:
        assert len(s.exec(select(m.Feedback).where(m.Feedback.trace_id == tid)).all()) == 1


# --- fine-tunes, models, changes -------------------------------------------------------


async def test_finetunes_metrics_and_models(jp_fetch: Any, store_url: str) -> None:
    job_id = seed_finetune()
    jobs = await get(jp_fetch, "finetunes")
    assert [(j["name"], j["status"], j["base"]) for j in jobs["items"]] == [
        ("support-ft", "completed", "tiny-llama")
    ]
    detail = await get(jp_fetch, f"finetunes/{job_id}")
    # The sidebar's detail is the notebook panel's view of the same job.
    from llmops_nb.views.finetunes import finetune_view

    assert detail == json.loads(json.dumps(finetune_view(lo.finetune_job(job_id))))
    assert detail["params"] == {"r": 16} and detail["status"] == "completed"
    assert detail["step"] == 30 and detail["loss"] == pytest.approx(0.1)
    assert [point[0] for point in detail["train"]] == list(range(1, 31))
    metrics = await get(jp_fetch, f"finetunes/{job_id}/metrics", limit=1000)
    assert [x["step"] for x in metrics["items"]] == list(range(1, 31))
    assert metrics["items"][-1]["loss"] == pytest.approx(0.1)
    tail = await get(jp_fetch, f"finetunes/{job_id}/metrics", limit=10, offset=25)
    assert [x["step"] for x in tail["items"]] == [26, 27, 28, 29, 30] and tail["total"] == 30
    models = await get(jp_fetch, "models")
    assert [(x["name"], x["version"], x["job_id"]) for x in models["items"]] == [
        ("support-ft", 1, job_id)
    ]
    assert (await error(jp_fetch, "finetunes/41/metrics")).code == 404


async def test_change_marker_moves_when_a_kernel_writes(jp_fetch: Any, store_url: str) -> None:
    before = (await get(jp_fetch, "changes"))["marker"]
    assert (await get(jp_fetch, "changes"))["marker"] == before
    seed_traces(1)
    after_trace = (await get(jp_fetch, "changes"))["marker"]
    assert after_trace != before
    lo.register_prompt("greeting", "Say hi to {{name}}")
    assert (await get(jp_fetch, "changes"))["marker"] != after_trace


# --- bad parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "text"),
    [
        ("traces", {"limit": "0"}, "limit must be between 1 and 500"),
        ("traces", {"limit": "many"}, "limit must be an integer"),
        ("prompts", {"offset": "-1"}, "offset must be between 0"),
        ("evals", {"limit": "501"}, "limit must be between 1 and 500"),
        ("traces", {"status": "fine"}, "status must be 'ok' or 'error'"),
        ("traces", {"since": "yesterday"}, "since must be an ISO 8601 time"),
        ("models", {"project": "no spaces please"}, "invalid project name"),
        ("prompts/x/diff", {"a": "one"}, "a must be an integer"),
        ("finetunes/1/metrics", {"limit": "10001"}, "limit must be between 1 and 10000"),
        ("finetunes/x", {}, "fine-tune job id must be an integer"),
        ("traces", {"since": "inf"}, "since must be a time between the years 1 and 9999"),
        ("traces", {"since": "1e400"}, "since must be a time between the years 1 and 9999"),
        ("traces", {"since": "nan"}, "since must be a time between the years 1 and 9999"),
        ("traces", {"until": "1e300"}, "until must be a time between the years 1 and 9999"),
    ],
)
async def test_bad_parameters_are_400_with_a_message(
    jp_fetch: Any, path: str, params: dict[str, str], text: str
) -> None:
    response = await error(jp_fetch, path, params=params)
    assert response.code == 400
    assert text in message(response)
