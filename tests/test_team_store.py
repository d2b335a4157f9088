"""A team on one PostgreSQL store: eight kernels of three users write traces, eval runs,
prompt versions, alias moves and feedback at once, and nothing is lost, duplicated or
misnumbered; every row a person writes names them (LLMOPS_NB_USER); a wrong password is
reported with the password masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import create_engine, text
from tornado.httpclient import HTTPClientError

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.errors import StoreUnavailable
from llmops_nb.registry import register_model
from llmops_nb.store import Store, get_store
from llmops_nb.store.traces import TraceDelta
from llmops_nb.testing import OpenAIServer

USERS = ("ada", "grace", "linus")
KERNELS = 8
TRACES_EACH = 25
VERSIONS_EACH = 5
ROWS = [{"x": "alpha"}, {"x": "beta"}, {"x": "gamma"}]

KERNEL = textwrap.dedent(
    """
    import faulthandler, json, sys, time
    from pathlib import Path

    import llmops_nb as lo
    from llmops_nb import tracing

    idx, go = int(sys.argv[1]), Path(sys.argv[2])
    lo.prompts()  # opens (and, for the first kernel, migrates) the store before the start
    Path(f"{go}.ready{idx}").touch()
    while not go.exists():
        time.sleep(0.01)
    faulthandler.dump_traceback_later(300, exit=True)  # a hung kernel shows where it hangs

    @lo.trace(name=f"work-{idx}")
    def work(n):
        with lo.span("step", kind="tool"):
            return n * 2

    def answer(x):
        return f"kernel {idx} says {x}"

    versions = []
    for i in range(TRACES_EACH):
        work(i)
        if i % (TRACES_EACH // VERSIONS_EACH) == 0:
            body = "user:\\nkernel " + str(idx) + " draft " + str(i) + ": {{x}}"
            versions.append(lo.register_prompt("shared", body).version)
    run = lo.evaluate(
        targets=[answer], data=ROWS, scorers=[{"contains": {"value": "{{x}}"}}],
        name=f"grid-{idx}", progress=False,
    )
    lo.set_alias("shared", f"k{idx}", versions[0])
    tracing.feedback(lo.last_trace().id, 1, f"from kernel {idx}")
    tracing.flush()
    print(json.dumps({"versions": versions, "run": run.id, "status": run.status}))
    """
)
for _key, _value in {
    "TRACES_EACH": TRACES_EACH,
    "VERSIONS_EACH": VERSIONS_EACH,
    "ROWS": ROWS,
}.items():
    KERNEL = KERNEL.replace(_key, repr(_value))


def _rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_eight_kernels_of_three_users_share_one_postgres_store(pg_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs, logs = [], []
    for idx in range(KERNELS):
        env = {
            **os.environ,
            "LLMOPS_NB_STORE": pg_url,
            "LLMOPS_NB_USER": USERS[idx % len(USERS)],
            "LLMOPS_NB_HOME": str(tmp_path / f"home{idx}"),
        }
        out, err = tmp_path / f"k{idx}.out", tmp_path / f"k{idx}.err"
        logs.append((out, err))
        with out.open("w") as stdout, err.open("w") as stderr:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", KERNEL, str(idx), str(go)],
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                )
            )
    deadline = time.monotonic() + 600
    while not all(Path(f"{go}.ready{i}").exists() for i in range(KERNELS)):
        assert all(p.poll() is None for p in procs), [e.read_text()[-2000:] for _, e in logs]
        assert time.monotonic() < deadline, "the kernels did not start"
        time.sleep(0.05)
    go.touch()  # all eight write at once from here
    outputs = []
    for p, (out, err) in zip(procs, logs, strict=True):
        p.wait(timeout=600)
        assert p.returncode == 0, err.read_text()[-3000:]
        outputs.append(json.loads(out.read_text().strip().splitlines()[-1]))

    def author_of(idx: int) -> str:
        return USERS[idx % len(USERS)]

    # traces: exactly TRACES_EACH per kernel, each with exactly its two spans
    per_kernel = dict(
        _rows(pg_url, "SELECT name, count(*) FROM trace WHERE name LIKE 'work-%' GROUP BY name")
    )
    assert per_kernel == {f"work-{i}": TRACES_EACH for i in range(KERNELS)}
    spans = _rows(
        pg_url,
        "SELECT t.n_spans, count(s.id) FROM trace t JOIN span s ON s.trace_id = t.id "
        "WHERE t.name LIKE 'work-%' GROUP BY t.id, t.n_spans",
    )
    assert len(spans) == KERNELS * TRACES_EACH and set(spans) == {(2, 2)}

    # prompt versions: one unbroken sequence 1..N, each written once, by its kernel's user
    versions = _rows(
        pg_url,
        "SELECT v.version, v.template, v.author, v.hash FROM prompt_version v "
        "JOIN prompt p ON p.id = v.prompt_id WHERE p.name = 'shared' ORDER BY v.version",
    )
    total = KERNELS * VERSIONS_EACH
    assert [v[0] for v in versions] == list(range(1, total + 1))
    assert len({v[3] for v in versions}) == total
    for _, template, author, _ in versions:
        idx = int(template.split("kernel ", 1)[1].split()[0])
        assert author == author_of(idx)
    claimed = sorted(v for o in outputs for v in o["versions"])
    assert claimed == list(range(1, total + 1))  # each kernel got back its own versions
    assert all(o["versions"] == sorted(o["versions"]) for o in outputs)
    assert Counter(v[2] for v in versions) == {
        u: VERSIONS_EACH * sum(author_of(i) == u for i in range(KERNELS)) for u in USERS
    }

    # eval runs: one per kernel, done, every cell once, each with its own trace
    runs = _rows(pg_url, "SELECT id, name, status, author FROM eval_run ORDER BY id")
    assert sorted((r[1], r[2], r[3]) for r in runs) == sorted(
        (f"grid-{i}", "done", author_of(i)) for i in range(KERNELS)
    )
    assert {o["run"] for o in outputs} == {r[0] for r in runs}
    results = _rows(
        pg_url,
        "SELECT r.run_id, r.row_index, r.trace_id, t.eval_run_id FROM eval_result r "
        "LEFT JOIN trace t ON t.id = r.trace_id",
    )
    assert len(results) == KERNELS * len(ROWS)
    assert len({(r[0], r[1]) for r in results}) == len(results)
    assert len({r[2] for r in results}) == len(results)
    assert all(r[3] == r[0] for r in results)  # each cell's trace is stored, linked to its run

    # alias moves and feedback: one each per kernel, by its user
    moves = _rows(pg_url, "SELECT alias, author FROM alias_event ORDER BY alias")
    assert sorted(moves) == sorted((f"k{i}", author_of(i)) for i in range(KERNELS))
    feedback = _rows(pg_url, "SELECT comment, author FROM feedback")
    assert sorted(feedback) == sorted((f"from kernel {i}", author_of(i)) for i in range(KERNELS))


def test_every_write_by_a_person_records_LLMOPS_NB_USER(
    monkeypatch: pytest.MonkeyPatch, openai_server: OpenAIServer, tiny_model: Path
) -> None:
    monkeypatch.setenv("LLMOPS_NB_USER", "grace")
    store = get_store()

    v1 = lo.register_prompt("topic", "user:\ntopic: {{text}}", parameters={"max_tokens": 8})
    lo.register_prompt("topic", "user:\nthe topic of {{text}}?", parameters={"max_tokens": 8})
    lo.set_alias("topic", "production", 1)
    lo.set_alias("topic", "production", 2)
    lo.rollback("topic", "production")
    data = lo.dataset("topics", pl.DataFrame({"text": ["a cat", "a dog"], "label": ["x", "y"]}))
    run = lo.evaluate(
        ["topic@1"],
        [{"model": "openai/gpt-4o-mini", "api_base": openai_server.base_url, "api_key": "sk-t"}],
        "dataset:topics@1",
        [{"contains": {"value": "{{label}}"}}],
        name="authored",
        progress=False,
    )
    trace_id = store.eval_results_page(run.id, 1, 0)[0][0].trace_id
    tracing.feedback(trace_id, -1, "off topic")
    registered = register_model(
        "topic-by-hand", base=f"local/{tiny_model}", adapter_path=None, backend=None,
        parameters={},
    )  # fmt: skip
    index = lo.index("notes", ["cats purr", "dogs bark"])
    job = lo.finetune(
        f"local/{tiny_model}", data.df, "topic@1", "label", name="topic-ft", max_steps=2,
        batch_size=2, threads=1,
    )  # fmt: skip
    job.wait(timeout=300)
    assert job.status == "completed", job.logs(tail=20)

    assert v1.author == "grace" and lo.prompt("topic@2").author == "grace"
    assert [e["author"] for e in store.alias_log("default", "topic")] == ["grace"] * 3
    assert data.author == "grace"
    assert store.eval_run(run.id).author == "grace"
    assert [f["author"] for f in lo.get_trace(trace_id).feedback] == ["grace"]
    assert registered.author == "grace"
    assert _rows(store.url, "SELECT author FROM vector_index WHERE name = 'notes'") == [("grace",)]
    assert index.ref == "notes@1"
    assert store.finetune_job(job.id).author == "grace"
    # the model the fine-tune registered (written by its worker process) names grace too
    assert _rows(store.url, "SELECT author FROM registered_model WHERE name = 'topic-ft'") == [
        ("grace",)
    ]


def test_a_wrong_postgres_password_is_reported_masked(pg_url: str) -> None:
    """A role that must give a password (scram), asked with the wrong one: one line that
    names the store and the failure, never the password."""
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP ROLE IF EXISTS team_pw_user"))
        conn.execute(text("CREATE ROLE team_pw_user LOGIN PASSWORD 'right-horse-battery'"))
        hba = Path(conn.execute(text("SHOW hba_file")).scalar_one())
        original = hba.read_text()
        # first match wins: this role must authenticate; everyone else stays trusted
        hba.write_text("host all team_pw_user 127.0.0.1/32 scram-sha-256\n" + original)
        conn.execute(text("SELECT pg_reload_conf()"))
    try:
        time.sleep(0.5)  # the postmaster rereads pg_hba.conf on SIGHUP
        secret = "Wr0ng-Secret-Pa55"
        bad_url = pg_url.replace("postgres@", f"team_pw_user:{secret}@")
        with pytest.raises(StoreUnavailable) as caught:
            Store(bad_url)
        message = str(caught.value)
        assert secret not in message and "\n" not in message
        assert "team_pw_user:***@127.0.0.1" in message
        assert "password authentication failed" in message
    finally:
        hba.write_text(original)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_reload_conf()"))
            conn.execute(text("DROP ROLE IF EXISTS team_pw_user"))
        admin.dispose()


@pytest.fixture
def jp_server_config() -> dict[str, object]:
    return {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}


async def test_the_sidebar_pages_traces_by_keyset_cursor(jp_fetch: Any, store_url: str) -> None:
    """Next pages follow next_cursor (no OFFSET): the same traces in the same order as
    paging by offset, ties on the start time included, none twice, none skipped."""
    now = time.time_ns()
    spans, deltas = [], []
    for i in range(23):
        tid, start = f"{i + 1:032x}", now - (i // 3) * 1000  # three traces per start time
        spans.append({"id": f"{i + 1:016x}", "trace_id": tid, "name": "call",
                      "start_ns": start, "end_ns": start + 10})  # fmt: skip
        deltas.append(TraceDelta(id=tid, project="default", name="call", start_ns=start,
                                 end_ns=start + 10, n_spans=1, root=True))  # fmt: skip
    get_store().record_spans(spans, deltas)

    by_offset = [
        t["id"]
        for offset in range(0, 23, 5)
        for t in (await _get(jp_fetch, "traces", limit=5, offset=offset))["items"]
    ]
    by_cursor, cursor, offset = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 5, "offset": offset}
        if cursor is not None:
            params["after"] = cursor
        page = await _get(jp_fetch, "traces", **params)
        assert page["total"] == 23 and page["offset"] == offset
        by_cursor += [t["id"] for t in page["items"]]
        cursor, offset = page.get("next_cursor"), offset + 5
        if cursor is None:
            break
    assert by_cursor == by_offset and len(set(by_cursor)) == 23

    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("llmops-nb", "api", "traces", params={"after": "12; DROP TABLE trace"})
    assert caught.value.code == 400
    assert "next_cursor" in json.loads(caught.value.response.body)["message"]


async def _get(jp_fetch: Any, path: str, **params: Any) -> Any:
    response = await jp_fetch("llmops-nb", "api", path, params=params)
    assert response.code == 200
    return json.loads(response.body)
