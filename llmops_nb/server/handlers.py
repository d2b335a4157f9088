"""Thin authenticated JSON handlers under /llmops-nb/api/ over the shared experiment store.

Each verb parses and checks its parameters (400 with a message), calls one store
query or service in a worker thread (the server's event loop never waits on the
database), and writes JSON. One run or trace is served as its view
(`llmops_nb.views`), the same data the notebook's panels show. Unknown ids are 404.
Writes (feedback, alias moves) are POSTs, so Jupyter's XSRF check applies to
cookie-authenticated browsers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .. import config, prompting, tracing
from ..errors import InvalidName, NotFound, StoreUnavailable
from ..store import get_store
from ..views.traces import MAX_COMMENT_CHARS
from . import payloads as p

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_METRICS_LIMIT = 10_000
MAX_ID = 2**62  # ids and versions above this are unknown (and would overflow SQLite)
TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")
# Epoch milliseconds from year 1 to year 9999: anything outside is a typo, not a time.
MIN_EPOCH_MS, MAX_EPOCH_MS = -62_135_596_800_000, 253_402_300_799_000


class BadParam(Exception):
    """A query parameter or body field the caller must fix (HTTP 400)."""


def api(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Map the store's user errors to HTTP statuses with a one-line JSON message."""

    @functools.wraps(method)
    async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except (BadParam, InvalidName) as exc:
            self.fail(400, str(exc))
        except NotFound as exc:
            self.fail(404, str(exc))
        except StoreUnavailable as exc:
            self.fail(503, str(exc))

    return wrapper


class BaseHandler(APIHandler):
    """Parameter parsing, store calls off the event loop, and JSON replies."""

    async def query(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call in a worker thread and record its time for Server-Timing."""
        start = time.perf_counter()
        result = await asyncio.to_thread(lambda: fn(*args, **kwargs))
        self._store_ms = getattr(self, "_store_ms", 0.0) + (time.perf_counter() - start) * 1000
        return result

    def reply(self, body: Any) -> None:
        total_ms = (time.perf_counter() - self._started) * 1000
        self.set_header("Content-Type", "application/json")
        self.set_header(
            "Server-Timing",
            f"store;dur={getattr(self, '_store_ms', 0.0):.2f}, total;dur={total_ms:.2f}",
        )
        self.finish(json.dumps(body))

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    def prepare(self) -> Any:
        self._started = time.perf_counter()
        return super().prepare()

    # --- parameters ---------------------------------------------------------------

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadParam(f"{name} must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise BadParam(f"{name} must be between {low} and {high}, got {value}")
        return value

    def paging(self, max_limit: int = MAX_LIMIT) -> tuple[int, int]:
        limit = self.int_arg("limit", DEFAULT_LIMIT, 1, max_limit)
        offset = self.int_arg("offset", 0, 0, 10**9)
        return limit, offset

    def project(self) -> str:
        name = self.get_query_argument("project", None) or config.current_project()
        return config.check_name("project", name)

    def str_arg(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        return value or None

    def time_arg(self, name: str) -> int | None:
        """An ISO 8601 time (UTC when no offset is given) or epoch milliseconds -> ns."""
        raw = self.str_arg(name)
        if raw is None:
            return None
        try:
            ms = float(raw)
        except ValueError:
            pass
        else:
            if not (math.isfinite(ms) and MIN_EPOCH_MS <= ms <= MAX_EPOCH_MS):
                raise BadParam(f"{name} must be a time between the years 1 and 9999, got {raw!r}")
            return int(ms * 1_000_000)
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadParam(
                f"{name} must be an ISO 8601 time or epoch milliseconds, got {raw!r}"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            return int(when.timestamp() * 1e9)
        except (OverflowError, ValueError):
            raise BadParam(f"{name} is out of range: {raw!r}") from None

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadParam("the request body must be JSON") from None
        if not isinstance(data, dict):
            raise BadParam("the request body must be a JSON object")
        return data


def _int_id(kind: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{kind} id must be an integer, got {raw!r}") from None
    if not 0 <= value <= MAX_ID:
        raise NotFound(f"no {kind} with id {value}")
    return value


# --- projects and changes --------------------------------------------------------------


class ProjectsHandler(BaseHandler):
    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        limit, offset = self.paging()
        rows, total = await self.query(get_store().project_page, limit, offset)
        items = [p.row(r) for r in rows]
        self.reply(p.page(items, total, limit, offset) | _followed_project())


def _followed_project() -> dict[str, Any]:
    """The project a notebook last chose with `%llmops project`, for the sidebar to follow."""
    recorded = config.recorded_project()
    if recorded is None:
        return {"current": config.current_project(), "current_updated": None}
    return {"current": recorded[0], "current_updated": recorded[1]}


class ChangesHandler(BaseHandler):
    """A fingerprint the sidebar polls: reload only when it changes."""

    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project = self.project()
        marker = await self.query(get_store().change_marker, project)
        self.reply({"project": project, "marker": marker} | _followed_project())


# --- prompts -------------------------------------------------------------------------


def _prompt_page(project: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    store = get_store()
    if store.find_project_id(project) is None:
        return [], 0
    rows = store.list_prompts(project)
    return rows[offset : offset + limit], len(rows)


class PromptsHandler(BaseHandler):
    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project, (limit, offset) = self.project(), self.paging()
        rows, total = await self.query(_prompt_page, project, limit, offset)
        self.reply(p.page([p.jsonable(r) for r in rows], total, limit, offset))


class PromptVersionsHandler(BaseHandler):
    @tornado.web.authenticated
    @api
    async def get(self, name: str) -> None:
        project, (limit, offset) = self.project(), self.paging()
        rows, total = await self.query(
            get_store().prompt_versions_page, project, name, limit, offset
        )
        self.reply(p.page([p.row(r) for r in rows], total, limit, offset))


def _diff(project: str, name: str, a: int | None, b: int | None) -> dict[str, Any]:
    if get_store().find_project_id(project) is None:
        raise NotFound(f"unknown project {project!r}")
    new = prompting.prompt(f"{name}@{b}" if b else name, project=project)
    old = (
        prompting.prompt(f"{name}@{a}", project=project)
        if a is not None
        else prompting.previous_version(new)
    )
    if old is None:
        return {"name": name, "from": None, "to": new.version, "diff": ""}
    return {"name": name, "from": old.version, "to": new.version, "diff": new.diff(old)}


class PromptDiffHandler(BaseHandler):
    """?a=2&b=3; b defaults to the latest version, a to the one before b."""

    @tornado.web.authenticated
    @api
    async def get(self, name: str) -> None:
        project = self.project()
        a = self.int_arg("a", 0, 1, 10**9) or None
        b = self.int_arg("b", 0, 1, 10**9) or None
        self.reply(await self.query(_diff, project, name, a, b))


def _aliases(project: str, name: str) -> dict[str, Any]:
    store = get_store()
    if store.find_project_id(project) is None:
        raise NotFound(f"unknown project {project!r}")
    return {
        "aliases": store.prompt_aliases(project, name),
        "log": [p.jsonable(e) for e in store.alias_log(project, name)],
    }


class PromptAliasesHandler(BaseHandler):
    """GET: alias -> version and the audit log (newest first, paged). POST: move or roll back."""

    @tornado.web.authenticated
    @api
    async def get(self, name: str) -> None:
        project, (limit, offset) = self.project(), self.paging()
        data = await self.query(_aliases, project, name)
        log = list(reversed(data["log"]))
        self.reply(
            {"name": name, "aliases": data["aliases"]}
            | {"log": p.page(log[offset : offset + limit], len(log), limit, offset)}
        )

    @tornado.web.authenticated
    @api
    async def post(self, name: str) -> None:
        project, body = self.project(), self.body()
        alias = body.get("alias")
        version = body.get("version")
        if not body.get("rollback") and (
            not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_ID
        ):
            raise BadParam(
                "version must be a positive integer up to 2**62 (or send rollback: true)"
            )
        target = None if body.get("rollback") else version
        before, after = await self.query(prompting.move_alias, name, alias, target, project=project)
        self.reply({"name": name, "alias": alias, "from": before, "to": after})


# --- evaluations ---------------------------------------------------------------------


class EvalRunsHandler(BaseHandler):
    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project, (limit, offset) = self.project(), self.paging()
        rows, total = await self.query(get_store().eval_runs_page, project, limit, offset)
        self.reply(p.page([p.row(r) for r in rows], total, limit, offset))


_VIEWS_KEPT = 64  # finished runs' views kept per server process
_eval_views: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_eval_views_lock = threading.Lock()


def _eval_view(run_id: int) -> dict[str, Any]:
    """The run's view, computed once per finished run: its numbers no longer change, and
    a 100,000-row summary must not tie up the server's threads on every poll."""
    from ..evals.run import EvalRun
    from ..views.evals import eval_view

    store = get_store()
    row = store.eval_run(run_id)
    project = store.project_name(row.project_id)
    run = EvalRun(row, project)
    if run.status == "running":
        return eval_view(run)
    key = (store.url, run_id, run.status, run.finished_at, run.baseline_id)
    with _eval_views_lock:
        if key in _eval_views:
            _eval_views.move_to_end(key)
            return _eval_views[key]
    view = eval_view(run)
    with _eval_views_lock:
        _eval_views[key] = view
        while len(_eval_views) > _VIEWS_KEPT:
            _eval_views.popitem(last=False)
    return view


class EvalRunHandler(BaseHandler):
    """One run as `views.evals.eval_view`: the heatmap's cells, thresholds, baseline, flags."""

    @tornado.web.authenticated
    @api
    async def get(self, run_id: str) -> None:
        rid = _int_id("eval run", run_id)
        self.reply(await self.query(_eval_view, rid))


class EvalResultsHandler(BaseHandler):
    """?prompt=REF&model=LABEL narrow the page to one heatmap cell."""

    @tornado.web.authenticated
    @api
    async def get(self, run_id: str) -> None:
        rid = _int_id("eval run", run_id)
        limit, offset = self.paging()
        rows, total = await self.query(
            get_store().eval_results_page,
            rid,
            limit,
            offset,
            prompt_ref=self.str_arg("prompt"),
            model_label=self.str_arg("model"),
        )
        self.reply(p.page([p.row(r) for r in rows], total, limit, offset))


# --- traces --------------------------------------------------------------------------


def _trace_page(
    project: str, limit: int, offset: int, after: tuple[int, str] | None = None, **filters: Any
) -> tuple[list[Any], int]:
    """A page of traces: from a keyset cursor AFTER when given (OFFSET is then only where
    the page sits, for the pager's numbers), else by OFFSET."""
    store = get_store()
    if store.find_project_id(project) is None:
        return [], 0
    skip = 0 if after is not None else offset
    rows = store.list_traces(project, limit=limit, offset=skip, after=after, **filters)
    return rows, store.count_traces(project, **filters)


TRACE_CURSOR = re.compile(r"^(-?\d{1,19})-([0-9a-f]{1,32})$")


def _trace_cursor(raw: str | None) -> tuple[int, str] | None:
    """'<start_ns>-<trace id>' (a page's next_cursor) -> the keyset (start_ns, id)."""
    if raw is None:
        return None
    match = TRACE_CURSOR.match(raw)
    if match is None:
        raise BadParam(f"after must be a page's next_cursor ('<start_ns>-<trace id>'), got {raw!r}")
    return int(match.group(1)), match.group(2)


class TracesHandler(BaseHandler):
    """Latest first; ?name=&name_contains=&status=ok|error&since=&until=&run= filter.

    name is exact, name_contains a case-insensitive substring; times are ISO 8601 or epoch
    ms; run is an eval run id (the traces of that run's calls). ?after= takes the previous
    page's next_cursor: the next page then reads from the index, however deep it is.
    """

    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project, (limit, offset) = self.project(), self.paging()
        status = self.str_arg("status")
        if status not in (None, "ok", "error"):
            raise BadParam(f"status must be 'ok' or 'error', got {status!r}")
        filters = {
            "name": self.str_arg("name"),
            "name_contains": self.str_arg("name_contains"),
            "status": status,
            "since_ns": self.time_arg("since"),
            "until_ns": self.time_arg("until"),
            "eval_run_id": self.int_arg("run", 0, 0, 2**62) or None,
        }
        after = _trace_cursor(self.str_arg("after"))
        rows, total = await self.query(_trace_page, project, limit, offset, after, **filters)
        reply = p.page([p.trace_summary(t) for t in rows], total, limit, offset)
        if len(rows) == limit:  # a next page may follow: where it starts
            reply["next_cursor"] = f"{rows[-1].start_ns}-{rows[-1].id}"
        self.reply(reply)


def _check_trace_id(trace_id: str) -> str:
    if not TRACE_ID.match(trace_id):
        raise BadParam(f"trace id must be hexadecimal, got {trace_id!r}")
    return trace_id.lower()


def _trace_view(trace_id: str) -> dict[str, Any]:
    from ..views.traces import trace_view

    return trace_view(tracing.get_trace(trace_id))


class TraceHandler(BaseHandler):
    """One trace as `views.traces.trace_view`: the span tree and its feedback."""

    @tornado.web.authenticated
    @api
    async def get(self, trace_id: str) -> None:
        self.reply(await self.query(_trace_view, _check_trace_id(trace_id)))


class FeedbackHandler(BaseHandler):
    """POST {"score": 1 | -1, "comment": "...", "span_id": "..."}: thumbs up/down."""

    @tornado.web.authenticated
    @api
    async def post(self, trace_id: str) -> None:
        tid, body = _check_trace_id(trace_id), self.body()
        score = body.get("score")
        if score not in (1, -1) or isinstance(score, bool):
            raise BadParam("score must be 1 (thumbs up) or -1 (thumbs down)")
        comment, span_id = body.get("comment"), body.get("span_id")
        if comment is not None and not isinstance(comment, str):
            raise BadParam("comment must be a string")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise BadParam(f"comment must be at most {MAX_COMMENT_CHARS:,} characters")
        if span_id is not None and not isinstance(span_id, str):
            raise BadParam("span_id must be a string")
        await self.query(tracing.feedback, tid, score, comment, span_id=span_id)
        self.set_status(201)
        self.reply({"trace_id": tid, "score": score, "comment": comment, "span_id": span_id})


# --- fine-tunes and models -------------------------------------------------------------


class FinetunesHandler(BaseHandler):
    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project, (limit, offset) = self.project(), self.paging()
        rows, total = await self.query(get_store().finetune_jobs_page, project, limit, offset)
        self.reply(p.page([p.row(r) for r in rows], total, limit, offset))


def _finetune_view(job_id: int) -> dict[str, Any]:
    """The job as `views.finetunes.finetune_view`: what the notebook's panel shows."""
    from ..finetuning.job import FineTuneJob
    from ..views.finetunes import finetune_view

    store = get_store()
    row = store.finetune_job(job_id)
    project = store.project_name(row.project_id)
    return finetune_view(FineTuneJob(job_id, project=project, row=row, store_url=store.url))


class FinetuneHandler(BaseHandler):
    """One job as its panel's view: status, step of total, losses, thinned curves, samples."""

    @tornado.web.authenticated
    @api
    async def get(self, job_id: str) -> None:
        self.reply(await self.query(_finetune_view, _int_id("fine-tune job", job_id)))


class FinetuneMetricsHandler(BaseHandler):
    """The loss curve, by step; pages up to 10,000 points."""

    @tornado.web.authenticated
    @api
    async def get(self, job_id: str) -> None:
        jid = _int_id("fine-tune job", job_id)
        limit, offset = self.paging(MAX_METRICS_LIMIT)
        rows, total = await self.query(get_store().finetune_metrics_page, jid, limit, offset)
        self.reply(p.page([p.row(r) for r in rows], total, limit, offset))


class ModelsHandler(BaseHandler):
    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project, (limit, offset) = self.project(), self.paging()
        rows, total = await self.query(get_store().models_page, project, limit, offset)
        self.reply(p.page([p.row(r) for r in rows], total, limit, offset))


# --- vector indexes --------------------------------------------------------------------


def _index_page(project: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    store = get_store()
    if store.find_project_id(project) is None:
        return [], 0
    rows = store.list_indexes(project)
    return rows[offset : offset + limit], len(rows)


class IndexesHandler(BaseHandler):
    """The project's vector indexes: each one's latest version, size, model, settings."""

    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        project, (limit, offset) = self.project(), self.paging()
        rows, total = await self.query(_index_page, project, limit, offset)
        self.reply(p.page([p.jsonable(r) for r in rows], total, limit, offset))


def _ops_view(project: str, since: str, every: str, by: str, until: str | None) -> dict[str, Any]:
    from ..monitoring import InvalidDuration, InvalidMonitorQuery
    from ..views.ops import ops_view

    try:
        return ops_view(since=since, every=every, by=by, project=project, until=until)
    except (InvalidDuration, InvalidMonitorQuery) as exc:
        raise BadParam(str(exc)) from None


class OpsHandler(BaseHandler):
    """The Ops tab: `views.ops.ops_view` (the dashboard's sections), as `lo.dashboard` shows."""

    @tornado.web.authenticated
    @api
    async def get(self) -> None:
        from ..monitoring import DEFAULT_BY, DEFAULT_EVERY, DEFAULT_SINCE

        since = self.str_arg("since") or DEFAULT_SINCE
        every = self.str_arg("every") or DEFAULT_EVERY
        by = self.str_arg("by") or DEFAULT_BY
        until = self.str_arg("until")
        self.reply(await self.query(_ops_view, self.project(), since, every, by, until))


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    ("projects", ProjectsHandler),
    ("changes", ChangesHandler),
    ("prompts", PromptsHandler),
    ("prompts/([^/]+)/versions", PromptVersionsHandler),
    ("prompts/([^/]+)/diff", PromptDiffHandler),
    ("prompts/([^/]+)/aliases", PromptAliasesHandler),
    ("evals", EvalRunsHandler),
    ("evals/([^/]+)", EvalRunHandler),
    ("evals/([^/]+)/results", EvalResultsHandler),
    ("traces", TracesHandler),
    ("traces/([^/]+)", TraceHandler),
    ("traces/([^/]+)/feedback", FeedbackHandler),
    ("finetunes", FinetunesHandler),
    ("finetunes/([^/]+)", FinetuneHandler),
    ("finetunes/([^/]+)/metrics", FinetuneMetricsHandler),
    ("models", ModelsHandler),
    ("indexes", IndexesHandler),
    ("ops", OpsHandler),
]


def setup_handlers(web_app: Any) -> None:
    """Register every route under {base_url}llmops-nb/api/."""
    base_url = web_app.settings["base_url"]
    handlers = [
        (url_path_join(base_url, "llmops-nb", "api", path) + "/?$", handler)
        for path, handler in ROUTES
    ]
    web_app.add_handlers(".*$", handlers)
