"""Monitoring queries: LLM calls per time bucket and group, from the rollup tables.

Aggregating the span table itself means parsing every span's JSON attributes (seconds
per million spans on SQLite). Instead `llm_rollup` (per minute) and `llm_rollup_hour`
keep, per project, period, model and prompt, the counts, sums and a latency histogram of
the LLM spans. The span writer (`TraceQueries.record_spans`) folds each batch's LLM
spans in, in the batch's own transaction, with one upsert per table (`fold_calls`).
Until migration 0004_rollup_writer, triggers did it span by span (their DDL stays here
for migrations 0003_monitor and 0004's downgrade), at 6-19x the cost of the write.
A query reads whole hours from the hour table and the minutes at either end from the
minute table, so its cost follows the buckets, not the spans.
The histogram's edges are `models.LATENCY_EDGES_MS`; `llmops_nb.monitoring` turns it
into percentiles.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, text

from . import models as m
from .base import StoreBase

MINUTE_NS = m.ROLLUP_GRAINS_NS["llm_rollup"]
HOUR_NS = m.ROLLUP_GRAINS_NS["llm_rollup_hour"]
BIN_COLUMNS = [m.latency_bin_column(k) for k in range(m.LATENCY_BINS)]
_SUMS = ("calls", "errors", "cache_hits", "input_tokens", "output_tokens", "cost", "latency_sum_ms")
_COLUMNS = ("project_id", "period_ns", "model", "prompt", *_SUMS, "latency_min_ms",
            "latency_max_ms", *BIN_COLUMNS)  # fmt: skip
GROUPS = {"model": "r.model", "prompt": "r.prompt", "project": "p.name", None: "''"}


class MonitorQueries(StoreBase):
    """Aggregates of the LLM spans over time, read from the rollup tables."""

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
        params: dict[str, Any] = {"step": step}
        where = []
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
        parts = []
        for i, (table, lo, hi) in enumerate(_periods(start, until_ns, step)):
            params[f"lo{i}"], params[f"hi{i}"] = lo, hi
            parts.append(f"SELECT * FROM {table} WHERE period_ns >= :lo{i} AND period_ns < :hi{i}")
        if not parts:
            return []
        sums = ", ".join(f"sum(r.{c}) AS {c}" for c in (*_SUMS, *BIN_COLUMNS))
        sql = (
            "SELECT (r.period_ns / :step) * :step AS bucket_ns, "
            f"{GROUPS[by]} AS key, {sums}, min(r.latency_min_ms) AS latency_min_ms, "
            "max(r.latency_max_ms) AS latency_max_ms "
            f"FROM ({' UNION ALL '.join(parts)}) r JOIN project p ON p.id = r.project_id "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            f"GROUP BY {'1, 2' if by else '1'} ORDER BY 1, 2"
        )
        with self.session() as s:
            rows = s.execute(text(sql), params).all()
        out = []
        n = len(_SUMS)
        for row in rows:
            item: dict[str, Any] = {"bucket_ns": int(row[0]), "key": row[1]}
            for c, value in zip(_SUMS, row[2 : 2 + n], strict=True):
                item[c] = (float if c in ("cost", "latency_sum_ms") else int)(value or 0)
            item["bins"] = [int(v or 0) for v in row[2 + n : -2]]
            item["latency_min_ms"] = float(row[-2])
            item["latency_max_ms"] = float(row[-1])
            out.append(item)
        return out


def _periods(start: int, until: int, step: int) -> list[tuple[str, int, int]]:
    """The rollup table and [lo, hi) period range that cover [START, UNTIL): whole hours
    from the hour table when buckets are whole hours, the minutes at the ends (or all of
    it) from the minute table."""
    if start >= until:
        return []
    first_hour = -(-start // HOUR_NS) * HOUR_NS
    last_hour = until - until % HOUR_NS
    if step % HOUR_NS or first_hour >= last_hour:
        return [("llm_rollup", start, until)]
    parts = [("llm_rollup_hour", first_hour, last_hour)]
    if start < first_hour:
        parts.insert(0, ("llm_rollup", start, first_hour))
    if last_hour < until:
        parts.append(("llm_rollup", last_hour, until))
    return parts


# --- the rollup writer: each batch of spans folded in by record_spans ------------------

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRACE_IDS_PER_QUERY = 500
_span_table = m.Span.__table__  # type: ignore[attr-defined]


LLMCall = tuple[str, int, str, str, int, int, int, int, float, float]
"""What one LLM span adds to the rollups, the fields the triggers computed in SQL: trace
id, start_ns, model, prompt, error (0/1), cached (0/1), input and output tokens, cost,
latency in ms. A plain tuple: the writer makes thousands a batch."""


def llm_calls(spans: Iterable[Mapping[str, Any]], dialect: str) -> list[LLMCall]:
    """The LLM spans among SPANS (span dicts, attributes as Python values) as calls.

    Read as stored (an attribute of an odd JSON type counts as absent), with the common
    types checked first. The dialect matters only where the triggers' SQL differed:
    PostgreSQL rounds a fractional token count and takes any number as a prompt version,
    SQLite truncates the count and takes only integer versions.
    """
    postgres = dialect != "sqlite"
    inf = math.inf
    calls = []
    for span in spans:
        if span.get("kind", "chain") != "llm":
            continue
        attrs = span.get("attributes")
        get = attrs.get if isinstance(attrs, Mapping) else {}.get
        model = get("llmops.model")
        if type(model) is not str:
            model = _text(model)
        if not model:
            model = get("gen_ai.request.model")
            if type(model) is not str:
                model = _text(model) or ""
        prompt = get("llmops.prompt.name")
        if type(prompt) is not str:
            prompt = _text(prompt)
        if prompt is None:
            prompt = ""
        else:
            version = get("llmops.prompt.version")
            if version is not None:
                version = str(version) if type(version) is int else _version(version, postgres)
                if version is not None:
                    prompt = f"{prompt}@{version}"
        input_tokens = get("gen_ai.usage.input_tokens")
        if type(input_tokens) is not int or not _INT64_MIN <= input_tokens <= _INT64_MAX:
            input_tokens = _integer(input_tokens, postgres)
        output_tokens = get("gen_ai.usage.output_tokens")
        if type(output_tokens) is not int or not _INT64_MIN <= output_tokens <= _INT64_MAX:
            output_tokens = _integer(output_tokens, postgres)
        cost = get("llmops.cost")
        if type(cost) is not float or not -inf < cost < inf:
            cost = _real(cost)
        start = span["start_ns"]
        calls.append((
            span["trace_id"], start, model, prompt,
            1 if span.get("status", "ok") == "error" else 0,
            1 if get("llmops.cached") is True else 0,
            input_tokens, output_tokens, cost, (span["end_ns"] - start) / 1000000.0,
        ))  # fmt: skip
    return calls


def stored_llm_calls(conn: Any, trace_ids: Sequence[str], dialect: str) -> list[LLMCall]:
    """The LLM spans already stored for TRACE_IDS: spans a batch wrote before their trace
    row existed, which count once that row arrives."""
    spans = []
    c = _span_table.c
    for i in range(0, len(trace_ids), _TRACE_IDS_PER_QUERY):
        chunk = trace_ids[i : i + _TRACE_IDS_PER_QUERY]
        query = select(c.trace_id, c.kind, c.status, c.start_ns, c.end_ns, c.attributes).where(
            c.kind == "llm", c.trace_id.in_(chunk)
        )
        spans += conn.execute(query).mappings().all()
    return llm_calls(spans, dialect)


def fold_calls(conn: Any, calls: Iterable[LLMCall], project_of: Mapping[str, int]) -> None:
    """Add CALLS to both rollup tables: one executemany upsert per table, grouped by
    project (of the call's trace, in PROJECT_OF), period, model and prompt. A call whose
    trace has no row yet is skipped: it is folded in when its trace row is written."""
    minutes: dict[tuple[int, int, str, str], list[Any]] = {}
    edges = m.LATENCY_EDGES_MS
    for trace_id, start, model, prompt, error, cached, tokens_in, tokens_out, cost, lat in calls:
        project_id = project_of.get(trace_id)
        if project_id is None:
            continue
        minute = start - start % MINUTE_NS if start >= 0 else _period(start, MINUTE_NS)
        key = (project_id, minute, model, prompt)
        totals = minutes.get(key)
        if totals is None:
            totals = minutes[key] = [0, 0, 0, 0, 0, 0.0, 0.0, lat, lat] + [0] * m.LATENCY_BINS
        totals[0] += 1
        totals[1] += error
        totals[2] += cached
        totals[3] += tokens_in
        totals[4] += tokens_out
        totals[5] += cost
        totals[6] += lat
        if lat < totals[7]:
            totals[7] = lat
        elif lat > totals[8]:
            totals[8] = lat
        totals[9 + bisect_right(edges, lat)] += 1
    if not minutes:
        return
    hours: dict[tuple[int, int, str, str], list[Any]] = {}
    for (project_id, minute, model, prompt), totals in minutes.items():
        key = (project_id, _period(minute, HOUR_NS), model, prompt)
        merged = hours.get(key)
        if merged is None:
            hours[key] = list(totals)
            continue
        for k in range(len(totals)):
            if k == 7:
                merged[k] = min(merged[k], totals[k])
            elif k == 8:
                merged[k] = max(merged[k], totals[k])
            else:
                merged[k] += totals[k]
    dialect = conn.dialect.name
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    values = f"VALUES ({', '.join([mark] * len(_COLUMNS))})"
    for table, groups in (("llm_rollup", minutes), ("llm_rollup_hour", hours)):
        rows = [(*key, *totals) for key, totals in sorted(groups.items())]  # one lock order
        conn.exec_driver_sql(_upsert(dialect, table, values), rows)


def _period(start_ns: int, grain: int) -> int:
    """START_NS - START_NS % GRAIN with SQL's remainder (the sign of the dividend)."""
    remainder = abs(start_ns) % grain
    return start_ns - (remainder if start_ns >= 0 else -remainder)


def _text(value: Any) -> str | None:
    """A JSON string, as stored (a NaN or infinity is stored as its name: `traces._dumps`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return None


def _integer(value: Any, postgres: bool) -> int:
    """A JSON number as a 64-bit count, else 0 (PostgreSQL rounds, SQLite truncates)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return 0
        whole = math.trunc(value)
        if postgres and abs(value - whole) >= 0.5:
            whole += 1 if value > 0 else -1
        value = whole
    return max(_INT64_MIN, min(_INT64_MAX, int(value)))


def _real(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    if isinstance(value, float):
        return value if math.isfinite(value) else 0.0
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _version(value: Any, postgres: bool) -> str | None:
    """A prompt version as the triggers appended it: an integer (on PostgreSQL any
    number, in its JSON spelling)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(int(value))
    if postgres and isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return None


# --- the old triggers (0003_monitor; dropped by 0004_rollup_writer, back on downgrade) -


def _span_fields(dialect: str, ref: str) -> dict[str, str]:
    """SQL for span row REF's (`new` or a table alias) rollup fields, never failing on odd
    attribute values (a failing trigger would lose the span)."""
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
    name = string("llmops.prompt.name")
    return {
        "start_ns": f"{ref}.start_ns",
        "model": f"COALESCE(NULLIF({string('llmops.model')}, ''), "
        f"{string('gen_ai.request.model')}, '')",
        "prompt": f"COALESCE({name} || '@' || {version}, {name}, '')",
        "errors": f"(CASE WHEN {ref}.status = 'error' THEN 1 ELSE 0 END)",
        "cache_hits": cached,
        "input_tokens": number("gen_ai.usage.input_tokens", integer=True),
        "output_tokens": number("gen_ai.usage.output_tokens", integer=True),
        "cost": number("llmops.cost", integer=False),
        "lat": f"(({ref}.end_ns - {ref}.start_ns) / 1000000.0)",
    }


def _fields_subquery(dialect: str, ref: str, project: str, source: str) -> str:
    """Each span's fields computed once (OFFSET 0 keeps SQLite from inlining them into
    every histogram test)."""
    fields = _span_fields(dialect, ref)
    columns = ", ".join(f"{sql} AS {name}" for name, sql in fields.items())
    return (
        f"(SELECT {project} AS project_id, {columns} {source} LIMIT -1 OFFSET 0) v"
        if (dialect == "sqlite")
        else f"(SELECT {project} AS project_id, {columns} {source}) v"
    )


def _bins(aggregate: bool) -> list[str]:
    edges = m.LATENCY_EDGES_MS
    tests = [f"v.lat < {edges[0]!r}"]
    tests += [f"v.lat >= {lo!r} AND v.lat < {hi!r}" for lo, hi in zip(edges, edges[1:])]
    tests.append(f"v.lat >= {edges[-1]!r}")
    flags = [f"(CASE WHEN {t} THEN 1 ELSE 0 END)" for t in tests]
    return [f"sum({f})" for f in flags] if aggregate else flags


def _upsert(dialect: str, table: str, select_sql: str) -> str:
    least, greatest = ("min", "max") if dialect == "sqlite" else ("LEAST", "GREATEST")
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in (*_SUMS, *BIN_COLUMNS)]
    updates.append(f"latency_min_ms = {least}({table}.latency_min_ms, excluded.latency_min_ms)")
    updates.append(f"latency_max_ms = {greatest}({table}.latency_max_ms, excluded.latency_max_ms)")
    return (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) {select_sql} "
        "ON CONFLICT (project_id, period_ns, model, prompt) DO UPDATE SET " + ", ".join(updates)
    )


def _select_one(dialect: str, grain: int) -> str:
    """The rollup row of the one span `new` (its trace row exists)."""
    project = "(SELECT t.project_id FROM trace t WHERE t.id = new.trace_id)"
    source = _fields_subquery(dialect, "new", project, "")
    values = [
        "v.project_id", f"v.start_ns - v.start_ns % {grain}", "v.model", "v.prompt", "1",
        "v.errors", "v.cache_hits", "v.input_tokens", "v.output_tokens", "v.cost", "v.lat",
        "v.lat", "v.lat", *_bins(aggregate=False),
    ]  # fmt: skip
    return f"SELECT {', '.join(values)} FROM {source} WHERE true"


def _select_grouped(dialect: str, grain: int, where: str) -> str:
    """The rollup rows of the LLM spans `s` (joined to their trace `t`) that match WHERE."""
    source = _fields_subquery(
        dialect,
        "s",
        "t.project_id",
        f"FROM span s JOIN trace t ON t.id = s.trace_id WHERE s.kind = 'llm' AND {where}",
    )
    period = f"v.start_ns - v.start_ns % {grain}"
    values = [
        "v.project_id", period, "v.model", "v.prompt", "count(*)", "sum(v.errors)",
        "sum(v.cache_hits)", "sum(v.input_tokens)", "sum(v.output_tokens)", "sum(v.cost)",
        "sum(v.lat)", "min(v.lat)", "max(v.lat)", *_bins(aggregate=True),
    ]  # fmt: skip
    return (
        f"SELECT {', '.join(values)} FROM {source} "
        f"GROUP BY v.project_id, {period}, v.model, v.prompt"
    )


def _both(dialect: str, build: Any) -> list[str]:
    return [_upsert(dialect, table, build(grain)) for table, grain in m.ROLLUP_GRAINS_NS.items()]


def rollup_triggers(dialect: str) -> list[str]:
    """DDL that keeps the rollups current: a span stored after its trace row is folded in
    by the span trigger; spans stored before it (the writer inserts a batch's spans first)
    by the trace trigger, when the trace row (and so its project) arrives."""
    on_span = "; ".join(_both(dialect, lambda g: _select_one(dialect, g)))
    on_trace = "; ".join(
        _both(dialect, lambda g: _select_grouped(dialect, g, "s.trace_id = new.id"))
    )
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


def backfill_rollup(dialect: str) -> list[str]:
    """Fold the LLM spans already stored into the rollups (the migration runs it once)."""
    return _both(dialect, lambda g: _select_grouped(dialect, g, "true"))
