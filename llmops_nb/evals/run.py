"""EvalRun: one grid run as the user sees it — results, summary, chart, comparison.

The rows live in the store; `results` reads them page by page into one polars frame
(the data row's columns come back as the `inputs` struct, joined from the stored
dataset version rather than re-parsed per row). `summary()` is the one place a run's
numbers are computed: the panel, the sidebar and the report all show them (`views.evals`).
Displaying a run is the face's job (`llmops_nb.display`), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import NotFound

if TYPE_CHECKING:
    import polars as pl

__all__ = ["EvalRun"]

_READ = (
    "prompt_ref",
    "model_label",
    "row_index",
    "expected",
    "output",
    "error",
    "scores",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "cached",
    "trace_id",
    "model",
    "prompt_version_id",
)


# What summary() needs: no texts, no data row (a fraction of the bytes `results` reads).
_SUMMARY_READ = (
    "prompt_ref",
    "model_label",
    "row_index",
    "error",
    "scores",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "cached",
)


@dataclass(frozen=True)
class _Threshold:
    threshold: float
    negate: bool

    @property
    def pass_at(self) -> float:
        """The score a row needs to pass this scorer."""
        return (1.0 - self.threshold) if self.negate and self.threshold < 1.0 else self.threshold

    def passed(self, value: float | None) -> bool:
        return value is not None and value >= self.pass_at - 1e-12


def _score_value(stored: Any) -> tuple[float | None, str | None]:
    if isinstance(stored, dict):
        value = stored.get("score")
        reason = stored.get("reason")
        return (float(value) if isinstance(value, int | float) else None), reason
    if isinstance(stored, bool):
        return (1.0 if stored else 0.0), None
    if isinstance(stored, int | float):
        return float(stored), None
    return None, None


class EvalRun:
    """One run of an eval grid. `lo.EvalRun.load("faq")` gets the latest run called faq."""

    def __init__(self, row: Any, project: str) -> None:
        self._row = row
        self.project = project
        self._results: pl.DataFrame | None = None

    # --- identity ------------------------------------------------------------------

    @property
    def id(self) -> int:
        return int(self._row.id)

    @property
    def name(self) -> str:
        return str(self._row.name)

    @property
    def status(self) -> str:
        return str(self._row.status)

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._row.spec or {})

    @property
    def n_cells(self) -> int:
        return int(self._row.n_cells)

    @property
    def created_at(self) -> datetime:
        return self._row.created_at  # type: ignore[no-any-return]

    @property
    def finished_at(self) -> datetime | None:
        return self._row.finished_at  # type: ignore[no-any-return]

    @property
    def baseline_id(self) -> int | None:
        return self._row.baseline_run_id  # type: ignore[no-any-return]

    @property
    def dataset_version_id(self) -> int | None:
        return self._row.dataset_version_id  # type: ignore[no-any-return]

    @property
    def scorers(self) -> list[str]:
        return [s["name"] for s in self.spec.get("scorers", [])]

    @property
    def prompts(self) -> list[str]:
        """The grid's rows: prompt labels, then target labels."""
        return [p["label"] for p in self.spec.get("prompts", [])] + self.targets

    @property
    def targets(self) -> list[str]:
        return [t["label"] for t in self.spec.get("targets", [])]

    @property
    def models(self) -> list[str]:
        """The grid's columns: model labels, then `target` when the run has targets."""
        from .plan import TARGET_COLUMN

        labels = [m["label"] for m in self.spec.get("models", [])]
        return labels + [TARGET_COLUMN] if self.targets else labels

    @property
    def baseline(self) -> EvalRun | None:
        return EvalRun.load(self.baseline_id, project=self.project) if self.baseline_id else None

    @classmethod
    def load(cls, ref: int | str, *, project: str | None = None) -> EvalRun:
        """A run by id (`12`, `"#12"`) or by name (its latest run)."""
        from ..store import get_store

        project = project or config.current_project()
        store = get_store()
        if isinstance(ref, int) or str(ref).lstrip("#").isdigit():
            return cls(store.get_eval_run(int(str(ref).lstrip("#"))), project)
        row = store.latest_eval_run(project, str(ref))
        if row is None:
            raise NotFound(f"no eval run named {ref!r} in project {project!r}")
        return cls(row, project)

    @staticmethod
    def list(
        name: str | None = None, *, project: str | None = None, limit: int = 50
    ) -> pl.DataFrame:
        """The project's runs, newest first: id, name, status, cells, done, author, times."""
        import polars as pl

        from ..store import get_store

        rows = get_store().list_eval_runs(project or config.current_project(), name, limit)
        schema = {
            "id": pl.Int64,
            "name": pl.String,
            "status": pl.String,
            "n_cells": pl.Int64,
            "done": pl.Int64,
            "author": pl.String,
            "created_at": pl.Datetime("us"),
            "finished_at": pl.Datetime("us"),
            "baseline_run_id": pl.Int64,
        }
        return pl.DataFrame(rows, schema=schema)

    def refresh(self) -> EvalRun:
        from ..store import get_store

        self._row = get_store().get_eval_run(self.id)
        self._results = None
        return self

    # --- results -------------------------------------------------------------------

    def _thresholds(self) -> dict[str, _Threshold]:
        return {
            s["name"]: _Threshold(float(s.get("threshold", 1.0)), bool(s.get("negate", False)))
            for s in self.spec.get("scorers", [])
        }

    @property
    def thresholds(self) -> dict[str, float]:
        """Per scorer, the score a row needs to pass it (what `passed` and pass_rate use)."""
        return {name: t.pass_at for name, t in self._thresholds().items()}

    @property
    def results(self) -> pl.DataFrame:
        """One row per prompt x model x data row: inputs, expected, output, error, one
        column per scorer, passed, latency, tokens, cost, cached, trace_id."""
        if self._results is None or self.status == "running":
            self._results = self._read_results()
        return self._results

    def cell_results(self, prompt: str, model: str, limit: int | None = None) -> pl.DataFrame:
        """The results of one prompt x model cell (for the panel), in row order."""
        return self._read_results(prompt=prompt, model=model, limit=limit)

    def _read_results(
        self,
        prompt: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        columns: tuple[str, ...] = _READ,
    ) -> pl.DataFrame:
        import polars as pl

        from ..store import get_store

        store = get_store()
        thresholds = self._thresholds()
        names = list(thresholds)
        frames = []
        for chunk in store.eval_result_chunks(
            self.id, prompt_ref=prompt, model_label=model, columns=columns, limit=limit
        ):
            frames.append(self._chunk_frame(chunk, names, thresholds, columns))
        if frames:
            frame = pl.concat(frames, how="vertical_relaxed", rechunk=True)
        else:
            frame = self._chunk_frame([], names, thresholds, columns)
        if columns is not _READ:
            return frame
        order_p = {p: i for i, p in enumerate(self.prompts)}
        order_m = {m: i for i, m in enumerate(self.models)}
        frame = frame.sort(
            pl.col("prompt").replace_strict(order_p, default=len(order_p), return_dtype=pl.Int64),
            pl.col("model").replace_strict(order_m, default=len(order_m), return_dtype=pl.Int64),
            "row_index",
        )
        inputs = self._inputs()
        if inputs is not None:
            frame = frame.join(inputs, on="row_index", how="left").select(
                "prompt",
                "model",
                "row_index",
                "inputs",
                *[c for c in frame.columns if c not in ("prompt", "model", "row_index")],
            )
        return frame

    def _chunk_frame(
        self,
        chunk: list[tuple[Any, ...]],
        names: list[str],
        thresholds: dict[str, _Threshold],
        read: tuple[str, ...] = _READ,
    ) -> pl.DataFrame:
        import polars as pl

        cols = list(zip(*chunk, strict=True)) if chunk else [[] for _ in read]
        data = dict(zip(read, cols, strict=True))
        score_cols: dict[str, list[float | None]] = {n: [] for n in names}
        reason_cols: dict[str, list[str | None]] = {n: [] for n in names}
        passed = []
        for scores, error in zip(data["scores"], data["error"], strict=True):
            scores = scores or {}
            ok = error is None
            for n in names:
                if n in scores:
                    value, reason = _score_value(scores[n])
                    ok = ok and thresholds[n].passed(value)
                elif error is not None:
                    value, reason = 0.0, None  # a failed call scores 0 on every scorer
                else:
                    value, reason = None, None
                score_cols[n].append(value)
                reason_cols[n].append(reason)
            passed.append(ok)
        columns: dict[str, Any] = {
            "prompt": pl.Series(data["prompt_ref"], dtype=pl.String),
            "model": pl.Series(data["model_label"], dtype=pl.String),
            "row_index": pl.Series(data["row_index"], dtype=pl.Int64),
        }
        for key in ("expected", "output"):
            if key in data:
                columns[key] = pl.Series(data[key], dtype=pl.String)
        columns["error"] = pl.Series(data["error"], dtype=pl.String)
        for n in names:
            columns[n] = pl.Series(score_cols[n], dtype=pl.Float64)
        columns["passed"] = pl.Series(passed, dtype=pl.Boolean)
        columns["latency_ms"] = pl.Series(data["latency_ms"], dtype=pl.Float64)
        columns["input_tokens"] = pl.Series(data["input_tokens"], dtype=pl.Int64)
        columns["output_tokens"] = pl.Series(data["output_tokens"], dtype=pl.Int64)
        columns["cost"] = pl.Series(data["cost"], dtype=pl.Float64)
        columns["cached"] = pl.Series(data["cached"], dtype=pl.Boolean)
        if "trace_id" in data:
            columns["trace_id"] = pl.Series(data["trace_id"], dtype=pl.String)
            columns["model_id"] = pl.Series(data["model"], dtype=pl.String)
            columns["prompt_version_id"] = pl.Series(data["prompt_version_id"], dtype=pl.Int64)
            for n in names:
                columns[f"{n}_reason"] = pl.Series(reason_cols[n], dtype=pl.String)
        return pl.DataFrame(columns)

    def _inputs(self) -> pl.DataFrame | None:
        import polars as pl

        if self.dataset_version_id is None:
            return None
        from .. import datasets

        try:
            df = datasets.get_version_by_id(self.dataset_version_id, project=self.project).df
        except NotFound:
            return None
        if df.width == 0:
            return None
        return df.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("row_index"),
            pl.struct(pl.all()).alias("inputs"),
        )

    # --- aggregates ------------------------------------------------------------------

    def summary(self) -> pl.DataFrame:
        """One row per prompt x model: rows, errors, mean per scorer, pass rate (at each
        scorer's threshold), p50/p95 latency of real calls and p50 of cache hits apart,
        tokens, cost. Failed calls score 0 on every scorer."""
        frame = (
            self._results
            if self._results is not None and self.status != "running"
            else self._read_results(columns=_SUMMARY_READ)
        )
        return summarize(frame, self.scorers, self.prompts, self.models)

    def compare(
        self, baseline: EvalRun | int | str | None = None, *, alpha: float = 0.05
    ) -> pl.DataFrame:
        """Per prompt x model x scorer: baseline and current means over the rows both
        runs scored, the paired difference with a bootstrap 95% interval and a
        permutation p-value, and a flag: regression, improvement, same, new or n/a."""
        other = self._resolve_baseline(baseline)
        return compare_results(self, other, alpha=alpha)

    def _resolve_baseline(self, baseline: EvalRun | int | str | None) -> EvalRun:
        if isinstance(baseline, EvalRun):
            return baseline
        if baseline is None:
            found = self.baseline
            if found is None:
                raise NotFound(
                    f"eval run #{self.id} has no baseline: pass one, e.g. run.compare(other_run)"
                )
            return found
        if baseline == "latest":
            from ..store import get_store

            row = get_store().latest_eval_run(
                self.project, self.name, status="done", before_id=self.id
            )
            if row is None:
                raise NotFound(f"no finished run of {self.name!r} before #{self.id}")
            return EvalRun(row, self.project)
        return EvalRun.load(baseline, project=self.project)

    def chart(self) -> Any:
        """An altair heatmap of the mean score per prompt x model, one panel per scorer.

        It displays offline, as sanitized SVG through vl-convert (`llmops_nb.charts`),
        unless you picked an altair renderer yourself."""
        import altair as alt

        from .. import charts

        charts.use_offline_renderer()
        long = summary_long(self.summary(), self.scorers)
        base = alt.Chart(long).encode(
            x=alt.X("model:N", title="model", sort=self.models, axis=alt.Axis(labelLimit=160)),
            y=alt.Y("prompt:N", title="prompt", sort=self.prompts, axis=alt.Axis(labelLimit=160)),
        )
        rect = base.mark_rect().encode(
            color=alt.Color(
                "mean:Q",
                scale=alt.Scale(domain=[0, 1], scheme="redyellowgreen"),
                title="mean score",
            ),
            tooltip=["prompt", "model", "scorer", alt.Tooltip("mean:Q", format=".3f")],
        )
        text = base.mark_text(baseline="middle", fontSize=12).encode(
            text=alt.Text("mean:Q", format=".2f")
        )
        # A band wide enough for "1.00": at the default 20 px step, neighbours' labels run
        # together ("1.000.50").
        cells = alt.layer(rect, text, data=long).properties(
            width=alt.Step(charts.CELL_WIDTH), height=alt.Step(charts.CELL_HEIGHT)
        )
        return cells.facet(column=alt.Column("scorer:N", title=None, sort=self.scorers)).properties(
            title=f"eval {self.name} #{self.id}"
        )

    def __repr__(self) -> str:
        from ..store import get_store

        done = get_store().eval_result_count(self.id)
        return f"EvalRun #{self.id} {self.name!r}: {self.status}, {done}/{self.n_cells} cells"


# --- pure frame functions (also used by the CLI and the panel) -----------------------------


def summarize(
    results: pl.DataFrame, scorers: list[str], prompts: list[str], models: list[str]
) -> pl.DataFrame:
    import polars as pl

    cached = pl.col("cached").fill_null(False)
    real = pl.col("latency_ms").filter(~cached)  # real calls: a cache hit's ms says nothing
    hits = pl.col("latency_ms").filter(cached)
    aggs = [
        pl.len().alias("n"),
        pl.col("error").is_not_null().sum().alias("errors"),
        *[pl.col(s).mean().alias(s) for s in scorers],
        pl.col("passed").mean().alias("pass_rate"),
        real.quantile(0.5, "linear").alias("latency_p50_ms"),
        real.quantile(0.95, "linear").alias("latency_p95_ms"),
        hits.quantile(0.5, "linear").alias("cached_latency_p50_ms"),
        pl.col("input_tokens").sum().alias("input_tokens"),
        pl.col("output_tokens").sum().alias("output_tokens"),
        pl.col("cost").sum().alias("cost"),
        pl.col("cached").sum().alias("cached"),
    ]
    out = results.group_by("prompt", "model", maintain_order=True).agg(aggs)
    order_p = {p: i for i, p in enumerate(prompts)}
    order_m = {m: i for i, m in enumerate(models)}
    return out.sort(
        pl.col("prompt").replace_strict(order_p, default=len(order_p), return_dtype=pl.Int64),
        pl.col("model").replace_strict(order_m, default=len(order_m), return_dtype=pl.Int64),
    ).with_columns(pl.col("n", "errors", "cached").cast(pl.Int64))


def summary_long(summary: pl.DataFrame, scorers: list[str]) -> pl.DataFrame:
    import polars as pl

    if not scorers:
        return pl.DataFrame(
            {
                "prompt": summary["prompt"],
                "model": summary["model"],
                "scorer": "pass_rate",
                "mean": summary["pass_rate"],
            }
        )
    return summary.unpivot(
        index=["prompt", "model"], on=scorers, variable_name="scorer", value_name="mean"
    )


def _row_keys(run: EvalRun, frame: pl.DataFrame, same_data: bool) -> pl.DataFrame:
    """A key pairing each result with the same data row in another run."""
    import polars as pl

    if same_data or "inputs" not in frame.columns:
        return frame.with_columns(pl.col("row_index").cast(pl.String).alias("_key"))
    encoded = pl.col("inputs").struct.json_encode()
    return frame.with_columns(
        (
            encoded
            + "#"
            + pl.col("row_index").cum_count().over(["prompt", "model", encoded]).cast(pl.String)
        ).alias("_key")
    )


def compare_results(current: EvalRun, baseline: EvalRun, *, alpha: float = 0.05) -> pl.DataFrame:
    import polars as pl

    from .stats import paired_test

    same_data = current.dataset_version_id == baseline.dataset_version_id
    cur = _row_keys(current, current.results, same_data)
    base = _row_keys(baseline, baseline.results, same_data)
    shared_scorers = [s for s in current.scorers if s in baseline.scorers]
    rows: list[dict[str, Any]] = []
    base_cells = {(p, m) for p, m in base.select("prompt", "model").unique().iter_rows()}
    for (prompt, model), group in cur.group_by("prompt", "model", maintain_order=True):
        for scorer in current.scorers:
            entry: dict[str, Any] = {"prompt": prompt, "model": model, "scorer": scorer}
            if (prompt, model) not in base_cells or scorer not in shared_scorers:
                entry.update(
                    baseline=None, current=group[scorer].mean(), delta=None, ci_low=None,
                    ci_high=None, p_value=None, n_shared=0, flag="new",
                )  # fmt: skip
                rows.append(entry)
                continue
            other = base.filter((pl.col("prompt") == prompt) & (pl.col("model") == model))
            paired = (
                group.select("_key", pl.col(scorer).alias("c"))
                .join(other.select("_key", pl.col(scorer).alias("b")), on="_key", how="inner")
                .drop_nulls()
            )
            c, b = paired["c"].to_list(), paired["b"].to_list()
            result = paired_test(c, b, alpha=alpha)
            entry.update(
                baseline=(sum(b) / len(b)) if b else None,
                current=(sum(c) / len(c)) if c else None,
                **result.as_dict(),
            )
            rows.append(entry)
    schema = {
        "prompt": pl.String,
        "model": pl.String,
        "scorer": pl.String,
        "baseline": pl.Float64,
        "current": pl.Float64,
        "delta": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "p_value": pl.Float64,
        "n_shared": pl.Int64,
        "flag": pl.String,
    }
    return pl.DataFrame(rows, schema=schema).select(list(schema))
