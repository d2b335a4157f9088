"""Monitoring queries: LLM calls per time bucket and group, from the per-minute rollup.

Aggregating the span table itself means parsing every span's JSON attributes (seconds
per million spans on SQLite). Instead `llm_rollup` keeps, per project, UTC minute, model
and prompt, the counts, sums and a latency histogram of the LLM spans; triggers fold each
span in as it is stored (written here, installed by migration 0003_monitor), so a query
reads minutes, not spans. The histogram's edges are `models.LATENCY_EDGES_MS`;
`llmops_nb.monitoring` turns into percentiles.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from . import models as m
from .base import StoreBase

MINUTE_NS = 60_000_000_000
BIN_COLUMNS = [m.latency_bin_column(k) for k in range(m.LATENCY_BINS)]
_SUMS = ("calls", "errors", "cache_hits", "input_tokens", "output_tokens", "cost", "latency_sum_ms")
GROUPS = {"model": "r.model", "prompt": "r.prompt", "project": "p.name", None: "''"}


class MonitorQueries(StoreBase):
    """Aggregates of the LLM spans over time, read from `llm_rollup`."""

    def monitor_buckets(
        self,
        *,
        since_ns: int,
        until_ns: int,
        every_ns: int,
        by: str | None = "model",
        project: str | None = None,
        model: str | None = None,
        prompt: str | None = None,
    ) -> list[dict[str, Any]]:
        """One row per (bucket, group) with calls: bucket_ns (its start, a whole multiple
        of EVERY_NS, itself whole minutes, since the epoch), key (the model, prompt ref or
        project; "" when by is None), the sums, latency min/max and histogram `bins`.

        Minutes in [since, until) count whole: a call belongs to the minute it started in.
        `project` None means every project; `prompt` "name" matches all its versions,
        "name@N" one.
        """
        start = since_ns - since_ns % MINUTE_NS
        step = max(MINUTE_NS, every_ns - every_ns % MINUTE_NS)
        params: dict[str, Any] = {"start": start, "until": until_ns, "step": step}
        where = ["r.minute_ns >= :start", "r.minute_ns < :until"]
        if project is not None:
            where.append("p.name = :project")
            params["project"] = project
        if model is not None:
            where.append("r.model = :model")
            params["model"] = model
        if prompt is not None:
            params["prompt"] = prompt
            if "@" in prompt:
                where.append("r.prompt = :prompt")
            else:
                where.append("(r.prompt = :prompt OR r.prompt LIKE :versions ESCAPE '\\')")
                escaped = prompt.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                params["versions"] = escaped + "@%"
        sums = ", ".join(f"sum(r.{c}) AS {c}" for c in (*_SUMS, *BIN_COLUMNS))
        sql = (
            "SELECT (r.minute_ns / :step) * :step AS bucket_ns, "
            f"{GROUPS[by]} AS key, {sums}, min(r.latency_min_ms) AS latency_min_ms, "
            "max(r.latency_max_ms) AS latency_max_ms "
            "FROM llm_rollup r JOIN project p ON p.id = r.project_id "
            f"WHERE {' AND '.join(where)} GROUP BY {'1, 2' if by else '1'} ORDER BY 1, 2"
        )
        with self.session() as s:
            rows = s.execute(text(sql), params).mappings().all()
        out = []
        for row in rows:
            item = {c: row[c] for c in ("bucket_ns", "key", *_SUMS)}
            item["bucket_ns"] = int(item["bucket_ns"])
            for c in _SUMS:
                item[c] = (float if c in ("cost", "latency_sum_ms") else int)(item[c] or 0)
            item["latency_min_ms"] = float(row["latency_min_ms"])
            item["latency_max_ms"] = float(row["latency_max_ms"])
            item["bins"] = [int(row[c] or 0) for c in BIN_COLUMNS]
            out.append(item)
        return out


# --- the rollup's triggers (installed by migration 0003_monitor) -----------------------


def _fields(dialect: str, ref: str) -> dict[str, str]:
    """SQL for one span row REF's (`new` or a table alias) rollup fields, never failing on
    odd attribute values (a failing trigger would lose the span)."""
    attrs = f"{ref}.attributes"
    if dialect == "sqlite":

        def typed(key: str, kinds: str, then: str = "{}", default: str = "NULL") -> str:
            value = f"json_extract({attrs}, '$.\"{key}\"')"
            kind = f"json_type({attrs}, '$.\"{key}\"')"
            return f"(CASE WHEN {kind} IN ({kinds}) THEN {then.format(value)} ELSE {default} END)"

        def number(key: str, integer: bool) -> str:
            cast = "CAST({} AS INTEGER)" if integer else "CAST({} AS REAL)"
            return typed(key, "'integer', 'real'", cast, "0")

        def string(key: str) -> str:
            return typed(key, "'text'")

        cached = typed("llmops.cached", "'true'", "1", "0")
        version = typed("llmops.prompt.version", "'integer'")
    else:

        def typed(key: str, kinds: str, then: str = "{}", default: str = "NULL") -> str:
            value = f"({attrs} ->> '{key}')"
            kind = f"json_typeof({attrs} -> '{key}')"
            return f"(CASE WHEN {kind} IN ({kinds}) THEN {then.format(value)} ELSE {default} END)"

        def number(key: str, integer: bool) -> str:
            cast = "{}::numeric::bigint" if integer else "{}::double precision"
            return typed(key, "'number'", cast, "0")

        def string(key: str) -> str:
            return typed(key, "'string'")

        cached = typed(
            "llmops.cached", "'boolean'", "(CASE WHEN {} = 'true' THEN 1 ELSE 0 END)", "0"
        )
        version = typed("llmops.prompt.version", "'number'")
    concat = f"{string('llmops.prompt.name')} || '@' || {version}"
    model = f"COALESCE(NULLIF({string('llmops.model')}, ''), {string('gen_ai.request.model')}, '')"
    prompt = f"COALESCE({concat}, {string('llmops.prompt.name')}, '')"
    latency = f"(({ref}.end_ns - {ref}.start_ns) / 1000000.0)"
    return {
        "minute_ns": f"({ref}.start_ns - ({ref}.start_ns % {MINUTE_NS}))",
        "model": model,
        "prompt": prompt,
        "calls": "1",
        "errors": f"(CASE WHEN {ref}.status = 'error' THEN 1 ELSE 0 END)",
        "cache_hits": cached,
        "input_tokens": number("gen_ai.usage.input_tokens", integer=True),
        "output_tokens": number("gen_ai.usage.output_tokens", integer=True),
        "cost": number("llmops.cost", integer=False),
        "latency": latency,
    }


def _bin_exprs(latency: str) -> list[str]:
    edges = m.LATENCY_EDGES_MS
    exprs = [f"(CASE WHEN {latency} < {edges[0]!r} THEN 1 ELSE 0 END)"]
    for lo, hi in zip(edges, edges[1:], strict=False):
        exprs.append(f"(CASE WHEN {latency} >= {lo!r} AND {latency} < {hi!r} THEN 1 ELSE 0 END)")
    exprs.append(f"(CASE WHEN {latency} >= {edges[-1]!r} THEN 1 ELSE 0 END)")
    return exprs


_COLUMNS = (
    "project_id", "minute_ns", "model", "prompt", *_SUMS,
    "latency_min_ms", "latency_max_ms", *BIN_COLUMNS,
)  # fmt: skip


def _upsert(dialect: str, select_sql: str) -> str:
    least, greatest = ("min", "max") if dialect == "sqlite" else ("LEAST", "GREATEST")
    updates = [f"{c} = llm_rollup.{c} + excluded.{c}" for c in (*_SUMS, *BIN_COLUMNS)]
    updates.append(f"latency_min_ms = {least}(llm_rollup.latency_min_ms, excluded.latency_min_ms)")
    updates.append(
        f"latency_max_ms = {greatest}(llm_rollup.latency_max_ms, excluded.latency_max_ms)"
    )
    return (
        f"INSERT INTO llm_rollup ({', '.join(_COLUMNS)}) {select_sql} "
        "ON CONFLICT (project_id, minute_ns, model, prompt) DO UPDATE SET " + ", ".join(updates)
    )


def _select_one(dialect: str, project: str) -> str:
    """The rollup row of the one span `new`."""
    f = _fields(dialect, "new")
    values = [
        project, f["minute_ns"], f["model"], f["prompt"], f["calls"], f["errors"],
        f["cache_hits"], f["input_tokens"], f["output_tokens"], f["cost"], f["latency"],
        f["latency"], f["latency"], *_bin_exprs(f["latency"]),
    ]  # fmt: skip
    return "SELECT " + ", ".join(values)


def _select_grouped(dialect: str, where: str) -> str:
    """The rollup rows of the LLM spans `s` joined to their trace `t`, WHERE ..."""
    f = _fields(dialect, "s")
    keys = ["t.project_id", f["minute_ns"], f["model"], f["prompt"]]
    values = [
        *keys, "count(*)", f"sum({f['errors']})", f"sum({f['cache_hits']})",
        f"sum({f['input_tokens']})", f"sum({f['output_tokens']})", f"sum({f['cost']})",
        f"sum({f['latency']})", f"min({f['latency']})", f"max({f['latency']})",
        *(f"sum({e})" for e in _bin_exprs(f["latency"])),
    ]  # fmt: skip
    return (
        f"SELECT {', '.join(values)} FROM span s JOIN trace t ON t.id = s.trace_id "
        f"WHERE s.kind = 'llm' AND {where} GROUP BY {', '.join(keys)}"
    )


def rollup_triggers(dialect: str) -> list[str]:
    """DDL that keeps `llm_rollup` current: a span stored after its trace row is folded in
    by the span trigger; spans stored before it (the writer inserts a batch's spans first)
    by the trace trigger, when the trace row (and so its project) arrives."""
    project = "(SELECT t.project_id FROM trace t WHERE t.id = new.trace_id)"
    on_span = _upsert(
        dialect, _select_one(dialect, project) + (" WHERE true" if dialect == "sqlite" else "")
    )
    on_trace = _upsert(dialect, _select_grouped(dialect, "s.trace_id = new.id"))
    if dialect == "sqlite":
        return [
            "CREATE TRIGGER llm_rollup_on_span AFTER INSERT ON span "
            "WHEN new.kind = 'llm' AND EXISTS (SELECT 1 FROM trace WHERE id = new.trace_id) "
            f"BEGIN {on_span}; END",
            f"CREATE TRIGGER llm_rollup_on_trace AFTER INSERT ON trace BEGIN {on_trace}; END",
        ]
    return [
        "CREATE FUNCTION llm_rollup_on_span() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF new.kind = 'llm' AND EXISTS (SELECT 1 FROM trace WHERE id = new.trace_id) THEN "
        f"{on_span}; END IF; RETURN NULL; END $$",
        "CREATE TRIGGER llm_rollup_on_span AFTER INSERT ON span FOR EACH ROW "
        "EXECUTE FUNCTION llm_rollup_on_span()",
        "CREATE FUNCTION llm_rollup_on_trace() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{on_trace}; RETURN NULL; END $$",
        "CREATE TRIGGER llm_rollup_on_trace AFTER INSERT ON trace FOR EACH ROW "
        "EXECUTE FUNCTION llm_rollup_on_trace()",
    ]


def drop_rollup_triggers(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [
            "DROP TRIGGER IF EXISTS llm_rollup_on_span",
            "DROP TRIGGER IF EXISTS llm_rollup_on_trace",
        ]
    return [
        "DROP TRIGGER IF EXISTS llm_rollup_on_span ON span",
        "DROP TRIGGER IF EXISTS llm_rollup_on_trace ON trace",
        "DROP FUNCTION IF EXISTS llm_rollup_on_span()",
        "DROP FUNCTION IF EXISTS llm_rollup_on_trace()",
    ]


def backfill_rollup(dialect: str) -> str:
    """Fold the LLM spans already stored into `llm_rollup` (the migration runs it once)."""
    return _upsert(dialect, _select_grouped(dialect, "true"))
