"""The grid executor: runs a checked plan's prompts x models x rows, concurrently, resumable.

`plan.prepare` resolves and checks a spec before anything is written. `run` then
stores the dataset version and the run row and executes the missing cells: a
pool of `concurrency` asyncio workers calls `llm.acomplete` (retries, timeout, cache,
tracing), scores the output, and hands the result to a writer that stores batches as
they complete. A result stays buffered until the store has it: a store outage longer
than the store's retries leaves the run `incomplete` (never `done`), with a message to
resume. A failing call is a recorded error in its cell, tried again on resume; a killed
process loses only the calls in flight, and `resume` finishes the rest (the unique cell
key makes a cell stored twice impossible).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import inspect
import json
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import config, tracing
from ..errors import LLMOpsError, StoreUnavailable
from ..redaction import redact, redact_text
from .plan import TARGET_COLUMN, GridPrompt, GridTarget, Plan, check_baseline, prepare
from .progress import drive
from .retrieval_scorers import RetrievalContext
from .scorers import Score, ScoreContext
from .spec import EvalSpecError, ModelSpec

if TYPE_CHECKING:
    from .run import EvalRun

__all__ = ["EvalIncomplete", "Plan", "prepare", "run"]  # prepare and Plan: from .plan

BATCH_ROWS = 200  # results per store write
FLUSH_SECONDS = 0.25  # at most this long between writes while results arrive


class EvalIncomplete(StoreUnavailable):
    """A run ended without storing every cell (the store failed): resume it."""


def run(
    plan: Plan,
    *,
    resume: bool = False,
    baseline: Any = None,
    progress: bool = True,
) -> EvalRun:
    """Store the data version and the run, execute the missing cells, return the EvalRun."""
    from .. import datasets
    from ..store import get_store
    from .run import EvalRun

    store = get_store()
    described = plan.describe()
    run_row = None
    if resume:
        run_row = store.latest_eval_run(plan.project, plan.name)
        if (
            run_row is not None
            and (run_row.spec or {}).get("fingerprint") != described["fingerprint"]
        ):
            raise EvalSpecError(
                f"cannot resume eval {plan.name!r}: run #{run_row.id} was made from a different "
                "spec or data; run it without --resume to start a new run"
            )
    if run_row is None:
        baseline_id = _baseline_id(store, plan, baseline, before_id=None)  # before any write
        version = plan.data_version or datasets.store_frame(
            plan.data_name, plan.frame, source=plan.data_source, project=plan.project
        )
        described["data"]["version"] = version.version
        run_row = store.create_eval_run(
            plan.project,
            plan.name,
            spec=redact(described),  # no credentials in api_base, extra_headers, ...
            dataset_version_id=version.id,
            baseline_run_id=baseline_id,
            n_cells=plan.n_cells,
            author=config.author(),
            notebook_path=config.notebook_path(),
        )
        done: set[tuple[str, str, int]] = set()
    else:
        done = store.eval_done_keys(run_row.id)
        changes: dict[str, Any] = {"status": "running", "finished_at": None}
        if baseline is not None:
            changes["baseline_run_id"] = _baseline_id(store, plan, baseline, before_id=run_row.id)
        store.update_eval_run(run_row.id, **changes)
    assert run_row.id is not None
    run_id = run_row.id
    todo = plan.n_cells - len(done)
    status = "failed"
    executor = _Executor(plan, run_id, done, store)
    label = f"eval {plan.name} #{run_id}"
    try:
        drive(executor, todo, progress, label)
        status = "done" if not executor.buffer else "incomplete"
        if status == "done" and store.eval_result_count(run_id) < plan.n_cells:
            status = "incomplete"  # never 'done' without every cell in the store
    except KeyboardInterrupt:
        status = "interrupted"
        print(
            f"interrupted: {label} stored {executor.stored + len(done)} of "
            f"{plan.n_cells} cells; re-run with --resume (resume=True) to finish it",
            file=sys.stderr,
        )
        raise
    finally:
        _set_status(store, run_id, status)
    if status == "incomplete":
        why = f": {executor.store_error}" if executor.store_error is not None else ""
        raise EvalIncomplete(
            f"{label} is incomplete: {len(executor.buffer)} finished cells could not be "
            f"stored{why}; re-run it with --resume (resume=True) when the store is back"
        )
    return EvalRun.load(run_id, project=plan.project)


def _set_status(store: Any, run_id: int, status: str) -> None:
    """Record the final status; when the store is down too, the run reads 'interrupted'
    once this process is gone (its owner is recorded)."""
    try:
        store.update_eval_run(run_id, status=status)
    except StoreUnavailable as exc:
        print(f"could not record the status of eval run #{run_id}: {exc}", file=sys.stderr)


def _baseline_id(store: Any, plan: Plan, baseline: Any, before_id: int | None) -> int | None:
    from ..errors import NotFound
    from .run import EvalRun

    if baseline is None or baseline is False or baseline == "":
        return None
    if isinstance(baseline, EvalRun):
        return baseline.id
    check_baseline(baseline)
    if isinstance(baseline, int) or (isinstance(baseline, str) and baseline.lstrip("#").isdigit()):
        try:
            row = store.get_eval_run(int(str(baseline).lstrip("#")))
        except NotFound:
            raise NotFound(f"baseline {baseline!r}: there is no eval run with that id") from None
        return row.id  # type: ignore[no-any-return]
    if baseline == "latest":
        row = store.latest_eval_run(plan.project, plan.name, status="done", before_id=before_id)
        if row is None:
            print(f"no earlier finished run of {plan.name!r}: nothing to compare with yet")
            return None
        return row.id  # type: ignore[no-any-return]
    if isinstance(baseline, str):
        row = store.latest_eval_run(plan.project, baseline, status="done")
        if row is None:
            raise NotFound(
                f"baseline {baseline!r}: no finished eval run of that name in project "
                f"{plan.project!r}; use 'latest', a run id, or a run name"
            )
        return row.id  # type: ignore[no-any-return]
    raise EvalSpecError(f"baseline must be 'latest', a run id or a run name, not {baseline!r}")


_Cell = tuple[int, dict[str, Any], GridPrompt | GridTarget, ModelSpec | None]


class _Executor:
    """The asyncio side of a run: workers, scoring, batched writes."""

    def __init__(self, plan: Plan, run_id: int, done: set[tuple[str, str, int]], store: Any):
        self.plan = plan
        self.run_id = run_id
        self.done = done
        self.store = store
        self.completed = 0  # cells finished (stored or buffered)
        self.stored = 0
        self.buffer: list[dict[str, Any]] = []  # finished cells not yet in the store
        self.store_error: StoreUnavailable | None = None  # the last failed write, if any
        self.kick: asyncio.Event | None = None
        self.writing: asyncio.Lock | None = None
        self.call_kwargs: dict[str, Any] = {}
        self.expected: dict[int, str | None] = {}  # row index -> its rendered reference
        if plan.timeout is not None:
            self.call_kwargs["timeout"] = plan.timeout
        if plan.retries is not None:
            self.call_kwargs["retries"] = plan.retries

    def cells(self) -> Iterator[_Cell]:
        """Row-major, so a partial run covers every prompt x model (and target) evenly."""
        for i, row in enumerate(self.plan.frame.iter_rows(named=True)):
            for p in self.plan.prompts:
                for m in self.plan.models:
                    if (p.label, m.label, i) not in self.done:
                        yield i, row, p, m
            for t in self.plan.targets:
                if (t.label, TARGET_COLUMN, i) not in self.done:
                    yield i, row, t, None

    async def execute(self) -> None:
        from ..llm.client import acomplete

        self.acomplete = acomplete
        self.kick = asyncio.Event()
        self.writing = asyncio.Lock()
        cells = self.cells()
        stop = asyncio.Event()
        writer = asyncio.create_task(self._writer(stop))
        workers = [asyncio.create_task(self._worker(cells)) for _ in range(self.plan.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            stop.set()
            self.kick.set()
            (writer_error,) = await asyncio.gather(writer, return_exceptions=True)
            await self._flush()  # whatever is left: the finished cells are never dropped
        if isinstance(writer_error, BaseException) and not isinstance(
            writer_error, asyncio.CancelledError
        ):
            raise writer_error

    async def _worker(
        self,
        cells: Iterator[_Cell],
    ) -> None:
        for i, row, p, m in cells:
            if isinstance(p, GridTarget):
                result = await self._target_cell(i, row, p)
            else:
                assert m is not None
                result = await self._cell(i, row, p, m)
            self.buffer.append(result)
            self.completed += 1
            if len(self.buffer) >= BATCH_ROWS:
                assert self.kick is not None
                self.kick.set()

    async def _writer(self, stop: asyncio.Event) -> None:
        assert self.kick is not None
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.kick.wait(), FLUSH_SECONDS)
            except TimeoutError:
                pass
            self.kick.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Store the buffered results; they leave the buffer only once stored. A store
        that stays down past its retries is noted, and the rows wait for the next try."""
        assert self.writing is not None
        async with self.writing:
            rows = self.buffer[:]
            if not rows:
                return
            try:
                await asyncio.to_thread(self.store.add_eval_results, rows)
            except StoreUnavailable as exc:
                self.store_error = exc
                return
            del self.buffer[: len(rows)]  # workers only append: these are the rows stored
            self.stored += len(rows)

    async def _cell(
        self, i: int, row: dict[str, Any], p: GridPrompt, m: ModelSpec
    ) -> dict[str, Any]:
        plan = self.plan
        model = m.model or p.model or config.settings.default_model
        output: str | None = None
        error: str | None = None
        completion = None
        trace_id = None
        span = None
        messages: list[dict[str, Any]] = []
        try:
            messages = p.render(row)
            with tracing.eval_span(  # the run's calls are grouped under it
                self.run_id, prompt=p.label, prompt_version=p.version_id, model=m.label, row=i
            ) as span:
                completion = await self.acomplete(
                    model,
                    messages=messages,
                    cache=plan.cache,
                    api_base=m.api_base,
                    api_key=m.api_key,
                    **self.call_kwargs,
                    **{**p.parameters, **m.parameters},
                )
            output = completion.text
            trace_id = completion.trace_id
        except LLMOpsError as exc:
            error = str(exc)
            trace_id = getattr(exc, "trace_id", None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an odd provider: recorded, the run goes on
            error = redact_text(f"{type(exc).__name__}: {exc}")
        ctx = RetrievalContext(
            row=row,
            latency_ms=completion.latency_ms if completion else None,
            cost=completion.cost if completion else None,
            input_tokens=completion.usage.input_tokens if completion else None,
            output_tokens=completion.usage.output_tokens if completion else None,
            input_text="\n".join(f"{x.get('role')}: {x.get('content')}" for x in messages),
            cache=plan.cache,
            cached=bool(completion.cached) if completion else False,
            call=self.acomplete,
            trace_id=trace_id,
        )
        cell = {"prompt_ref": p.label, "prompt_version_id": p.version_id, "model": model,
                "model_label": m.label}  # fmt: skip
        cached = bool(completion.cached) if completion else False
        return await self._result(i, row, cell, output, error, ctx, cached=cached, span=span)

    async def _target_cell(self, i: int, row: dict[str, Any], t: GridTarget) -> dict[str, Any]:
        """Call a target with the row's columns under the row's eval span: its retrievals
        and model calls are traced under it and collected for the scorers."""
        from ..llm.client import observe_completions
        from ..retrieval import collect_retrievals

        arguments = t.arguments(row)
        output: str | None = None
        error: str | None = None
        trace_id = None
        span = None
        extra: list[str] = []
        start = time.perf_counter()
        with collect_retrievals() as retrievals, observe_completions() as completions:
            try:
                with tracing.eval_span(
                    self.run_id, inputs=arguments, prompt=t.label, model=TARGET_COLUMN, row=i
                ) as span:
                    trace_id = span.trace_id
                    result = await _call(t.fn, arguments)
                    output, extra = _target_output(result)
                    span.set_outputs(output)
            except LLMOpsError as exc:
                error = str(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the target's own failure: recorded in its cell
                error = redact_text(f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - start) * 1000
        costs = [c.cost for c in completions if c.cost is not None]
        ctx = RetrievalContext(
            row=row,
            latency_ms=latency,
            cost=sum(costs) if costs else None,
            input_tokens=sum(c.usage.input_tokens for c in completions) if completions else None,
            output_tokens=sum(c.usage.output_tokens for c in completions) if completions else None,
            input_text="\n".join(f"{k}: {v}" for k, v in arguments.items()),
            cache=self.plan.cache,
            call=self.acomplete,
            trace_id=trace_id,
            retrievals=list(retrievals),
            returned_contexts=extra,
        )
        module = getattr(t.fn, "__module__", None) or ""
        qualname = getattr(t.fn, "__qualname__", None) or t.label
        cell = {"prompt_ref": t.label, "prompt_version_id": None,
                "model": f"python:{module}.{qualname}".replace(":.", ":"),
                "model_label": TARGET_COLUMN}  # fmt: skip
        cached = bool(completions) and all(c.cached for c in completions)
        return await self._result(i, row, cell, output, error, ctx, cached=cached, span=span)

    async def _result(
        self,
        i: int,
        row: dict[str, Any],
        cell: dict[str, Any],
        output: str | None,
        error: str | None,
        ctx: ScoreContext,
        *,
        cached: bool,
        span: tracing.SpanHandle | None,
    ) -> dict[str, Any]:
        """Score one cell's output and make its result row; the scores are traced under the
        cell's eval span too, for OpenTelemetry backends."""
        scores: dict[str, Any] = {}
        for s in self.plan.scorers:
            if error is not None:
                if s.args_for(i) is not None:
                    scores[s.name] = Score(0.0, "no output: the call failed").stored()
                continue
            score = await s.score(i, output or "", ctx)
            if score is not None:
                scores[s.name] = score.stored()
        if span is not None and scores:
            tracing.eval_scores(span, scores)
        return {
            "run_id": self.run_id,
            **cell,
            "row_index": i,
            "inputs": {k: _jsonable(v) for k, v in row.items()},
            "expected": self._expected(i, row),
            "output": output,
            "error": error,
            "scores": scores,
            "latency_ms": ctx.latency_ms,
            "input_tokens": ctx.input_tokens,
            "output_tokens": ctx.output_tokens,
            "cost": ctx.cost,
            "cached": cached,
            "trace_id": getattr(ctx, "trace_id", None),
        }

    def _expected(self, i: int, row: dict[str, Any]) -> str | None:
        """What the row is compared with, for display: `expected`, else the first
        scorer's reference argument (rendered once per row, not once per cell)."""
        if "expected" in row and row["expected"] is not None:
            return str(row["expected"])
        if i not in self.expected:
            self.expected[i] = self._reference(i, row)
        return self.expected[i]

    def _reference(self, i: int, row: dict[str, Any]) -> str | None:
        for s in self.plan.scorers:
            args = s.args_for(i)
            if not args:
                continue
            for key in ("expected", "reference", "value", "pattern"):
                value = args.get(key)
                if isinstance(value, str):
                    try:
                        return str(s.render({key: value}, row)[key])
                    except Exception:
                        return value
        return None


async def _call(fn: Any, arguments: dict[str, Any]) -> Any:
    """A coroutine function is awaited here; a plain one runs in a worker thread (the
    context, so the current span and the collectors, goes with it)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(**arguments)
    result = await asyncio.to_thread(fn, **arguments)
    if inspect.isawaitable(result):
        result = await result
    return result


def _target_output(result: Any) -> tuple[str, list[str]]:
    """A target's return value -> (output text, contexts it returned itself).

    A string is the output; a Completion gives its text; a mapping its `answer` (or
    `output`) and its `contexts` (texts, or hits with a `text`)."""
    if result is None:
        return "", []
    if isinstance(result, str):
        return result, []
    if isinstance(result, dict):
        answer = result.get("answer", result.get("output", ""))
        contexts = [
            c.get("text", "") if isinstance(c, dict) else str(getattr(c, "text", c))
            for c in (result.get("contexts") or [])
        ]
        return ("" if answer is None else str(answer)), contexts
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text, []
    try:
        return json.dumps(result, ensure_ascii=False, default=str), []
    except (TypeError, ValueError):
        return str(result), []


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)
