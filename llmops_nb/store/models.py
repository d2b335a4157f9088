"""The whole data model of the shared experiment store, as SQLModel tables.

Times are timezone-aware UTC datetimes; span clocks are integer nanoseconds since the epoch
(OpenTelemetry's unit). Trace and span ids are OpenTelemetry hex strings; every other
id is an integer. Spans carry no foreign key to their trace because the batching
exporter may write a trace's children before its root.

Changing a table means adding a migration under `migrations/versions/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Project(SQLModel, table=True):
    __tablename__ = "project"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow)


# --- prompts -------------------------------------------------------------------------


class Prompt(SQLModel, table=True):
    __tablename__ = "prompt"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PromptVersion(SQLModel, table=True):
    __tablename__ = "prompt_version"
    __table_args__ = (
        UniqueConstraint("prompt_id", "version"),
        Index("ix_prompt_version_hash", "prompt_id", "hash"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id")
    version: int
    hash: str  # sha256 of the normalized template, model and parameters
    template: str = Field(sa_type=Text)
    model: Optional[str] = None
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # front matter that is not part of the identity: description, sample, inputs
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    variables: list[str] = Field(default_factory=list, sa_type=JSON)
    message: Optional[str] = None
    author: str = ""
    notebook_path: Optional[str] = None
    parent_id: Optional[int] = Field(default=None, foreign_key="prompt_version.id")
    created_at: datetime = Field(default_factory=utcnow)


class PromptAlias(SQLModel, table=True):
    __tablename__ = "prompt_alias"
    __table_args__ = (UniqueConstraint("prompt_id", "alias"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id")
    alias: str
    version_id: int = Field(foreign_key="prompt_version.id")
    updated_at: datetime = Field(default_factory=utcnow)


class AliasEvent(SQLModel, table=True):
    """Audit log: every move of an alias, who made it, from which version to which."""

    __tablename__ = "alias_event"
    __table_args__ = (Index("ix_alias_event_prompt_alias", "prompt_id", "alias", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id")
    alias: str
    action: str  # "set" or "rollback"
    from_version_id: Optional[int] = Field(default=None, foreign_key="prompt_version.id")
    to_version_id: int = Field(foreign_key="prompt_version.id")
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)


# --- datasets ------------------------------------------------------------------------


class Dataset(SQLModel, table=True):
    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    created_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    __tablename__ = "dataset_version"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        Index("ix_dataset_version_hash", "dataset_id", "hash"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id")
    version: int
    hash: str  # sha256 of the rows' canonical content
    n_rows: int
    columns: list[str] = Field(default_factory=list, sa_type=JSON)
    data: bytes = Field(sa_type=LargeBinary)  # the rows as Parquet
    source: Optional[str] = None
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)


# --- evaluations ---------------------------------------------------------------------


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_run"
    __table_args__ = (Index("ix_eval_run_project_created", "project_id", "created_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    status: str = "running"  # running, done, incomplete, failed, interrupted
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    dataset_version_id: Optional[int] = Field(default=None, foreign_key="dataset_version.id")
    baseline_run_id: Optional[int] = Field(default=None, foreign_key="eval_run.id")
    n_cells: int = 0
    author: str = ""
    notebook_path: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None
    owner: Optional[str] = None  # "host:pid:start" of the process running it, while running


class EvalResult(SQLModel, table=True):
    """One prompt x model x data row of a run; the unique key makes --resume idempotent."""

    __tablename__ = "eval_result"
    __table_args__ = (UniqueConstraint("run_id", "prompt_ref", "model_label", "row_index"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="eval_run.id", index=True)
    prompt_ref: str
    prompt_version_id: Optional[int] = Field(default=None, foreign_key="prompt_version.id")
    model: str
    model_label: str
    row_index: int
    inputs: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    expected: Optional[str] = Field(default=None, sa_type=Text)
    output: Optional[str] = Field(default=None, sa_type=Text)
    error: Optional[str] = Field(default=None, sa_type=Text)
    scores: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    latency_ms: Optional[float] = None
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cost: Optional[float] = None
    cached: bool = False
    trace_id: Optional[str] = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)


# --- traces --------------------------------------------------------------------------


class Trace(SQLModel, table=True):
    __tablename__ = "trace"
    __table_args__ = (
        Index("ix_trace_project_start", "project_id", "start_ns"),
        Index("ix_trace_project_name", "project_id", "name"),
        Index("ix_trace_eval_run", "eval_run_id", "start_ns"),
    )

    id: str = Field(primary_key=True)  # OpenTelemetry trace id, 32 hex digits
    project_id: int = Field(foreign_key="project.id")
    name: str
    status: str = "ok"  # ok or error
    error: Optional[str] = Field(default=None, sa_type=Text)
    start_ns: int = Field(sa_type=BigInteger)
    end_ns: Optional[int] = Field(default=None, sa_type=BigInteger)
    n_spans: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    notebook_path: Optional[str] = None
    # the eval run whose cell's call this trace holds (no foreign key: spans come first)
    eval_run_id: Optional[int] = None


class Span(SQLModel, table=True):
    __tablename__ = "span"
    __table_args__ = (Index("ix_span_trace_start", "trace_id", "start_ns"),)

    id: str = Field(primary_key=True)  # OpenTelemetry span id, 16 hex digits
    trace_id: str
    parent_id: Optional[str] = None
    name: str
    kind: str = "chain"  # llm, chain, tool, retriever, embedding, ...
    status: str = "ok"
    error: Optional[str] = Field(default=None, sa_type=Text)
    start_ns: int = Field(sa_type=BigInteger)
    end_ns: int = Field(sa_type=BigInteger)
    inputs: Optional[Any] = Field(default=None, sa_type=JSON)
    outputs: Optional[Any] = Field(default=None, sa_type=JSON)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Feedback(SQLModel, table=True):
    __tablename__ = "feedback"

    id: Optional[int] = Field(default=None, primary_key=True)
    trace_id: str = Field(index=True)
    span_id: Optional[str] = None
    score: int  # +1 thumbs up, -1 thumbs down
    comment: Optional[str] = Field(default=None, sa_type=Text)
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)


# --- fine-tunes and the model registry ---------------------------------------------


class FinetuneJob(SQLModel, table=True):
    __tablename__ = "finetune_job"
    __table_args__ = (Index("ix_finetune_job_project_created", "project_id", "created_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    base: str
    method: str  # lora, qlora, full
    backend: str  # unsloth, peft
    status: str = "queued"  # queued, running, done, failed, cancelled
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    data_hash: Optional[str] = None
    prompt_version_id: Optional[int] = Field(default=None, foreign_key="prompt_version.id")
    target: Optional[str] = None
    output_dir: Optional[str] = None
    pid: Optional[int] = None
    error: Optional[str] = Field(default=None, sa_type=Text)
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None


class FinetuneMetric(SQLModel, table=True):
    __tablename__ = "finetune_metric"
    __table_args__ = (Index("ix_finetune_metric_job_step", "job_id", "step"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="finetune_job.id")
    step: int
    epoch: Optional[float] = None
    loss: Optional[float] = None
    lr: Optional[float] = None
    extra: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow)


class RegisteredModel(SQLModel, table=True):
    """The model registry: a usable `local/<name>` with its lineage."""

    __tablename__ = "registered_model"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    version: int
    base: str
    adapter_path: Optional[str] = None
    backend: Optional[str] = None
    job_id: Optional[int] = Field(default=None, foreign_key="finetune_job.id")
    data_hash: Optional[str] = None
    prompt_version_id: Optional[int] = Field(default=None, foreign_key="prompt_version.id")
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)


# --- retrieval and caching -----------------------------------------------------------


class VectorIndex(SQLModel, table=True):
    """One version of an hnswlib index: its settings here, its files under LLMOPS_NB_HOME."""

    __tablename__ = "vector_index"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version"),
        Index("ix_vector_index_hash", "project_id", "name", "hash"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    version: int
    hash: str  # sha256 of the items (ids, texts, metadata), the model and the settings
    embed_model: str
    dim: int
    n_items: int
    space: str = "cosine"
    m: int = 16  # hnswlib M: links per node
    ef_construction: int = 200
    ef: int = 64  # search breadth (at least k)
    path: str  # the version's folder, relative to LLMOPS_NB_HOME
    parent_id: Optional[int] = None  # the version that add/delete started from
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    deleted_at: Optional[datetime] = None  # dropped: its files are gone


class CacheEntry(SQLModel, table=True):
    """Response cache: sha256 of (model, messages, parameters) -> the response."""

    __tablename__ = "response_cache"

    key: str = Field(primary_key=True)
    model: str
    response: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    hits: int = 0
    trace_id: str | None = None  # the trace of the model call that filled this entry


# --- serving -------------------------------------------------------------------------


class ApiKey(SQLModel, table=True):
    """A key of the serving endpoint: only its salted hash is kept, never the key."""

    __tablename__ = "api_keys"

    id: Optional[int] = Field(default=None, primary_key=True)
    key_id: str = Field(unique=True)  # the public part of the key: lookup and traces use it
    name: str = Field(index=True)
    hash: str  # sha256 of key_id and the secret part
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: Optional[datetime] = None


# --- monitoring ------------------------------------------------------------------------

LATENCY_BINS_PER_DECADE = 10
LATENCY_EDGES_MS: tuple[float, ...] = tuple(
    10 ** (k / LATENCY_BINS_PER_DECADE) for k in range(6 * LATENCY_BINS_PER_DECADE + 1)
)
"""Latency histogram edges, 1 ms to 1000 s, 10 per decade (each bin about 26 % wide):
bin 0 holds calls under 1 ms, bin k calls in [edge k-1, edge k), the last bin the rest."""
LATENCY_BINS = len(LATENCY_EDGES_MS) + 1
ROLLUP_GRAINS_NS = {"llm_rollup": 60_000_000_000, "llm_rollup_hour": 3_600_000_000_000}
"""The rollup tables and the period each row covers: a minute, an hour."""


def latency_bin_column(k: int) -> str:
    return f"h{k:02d}"


def _rollup_table(name: str) -> Table:
    return Table(
        name,
        SQLModel.metadata,
        Column("project_id", Integer, ForeignKey("project.id"), primary_key=True),
        Column("period_ns", BigInteger, primary_key=True),  # UTC start of the minute/hour
        Column("model", String, primary_key=True),  # "" when the span names none
        Column("prompt", String, primary_key=True),  # "name@version", "name" or ""
        Column("calls", Integer, nullable=False),
        Column("errors", Integer, nullable=False),
        Column("cache_hits", Integer, nullable=False),
        Column("input_tokens", BigInteger, nullable=False),
        Column("output_tokens", BigInteger, nullable=False),
        Column("cost", Float, nullable=False),
        Column("latency_sum_ms", Float, nullable=False),
        Column("latency_min_ms", Float, nullable=False),
        Column("latency_max_ms", Float, nullable=False),
        *(Column(latency_bin_column(k), Integer, nullable=False) for k in range(LATENCY_BINS)),
        Index(f"ix_{name}_period", "period_ns"),
    )


llm_rollup = _rollup_table("llm_rollup")
llm_rollup_hour = _rollup_table("llm_rollup_hour")
"""Per project, UTC minute (hour), model and prompt: the LLM spans' counts, sums and
latency histogram, folded in by the span writer in each batch's transaction
(`store.monitoring`), so monitoring reads minutes and hours, not spans, over millions
of calls."""
# --- operations: audit log, model aliases, alerts -------------------------------------


class AuditEvent(SQLModel, table=True):
    """The append-only audit log: who changed what, when, from what to what, and why."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_project_created", "project_id", "created_at"),
        Index("ix_audit_events_action_created", "action", "created_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    author: str = ""
    project_id: Optional[int] = Field(default=None, foreign_key="project.id")
    action: str  # "alias moved", "rollback", "alert fired", ... (llmops_nb.audit.ACTIONS)
    target: str  # what it happened to: "support_reply@production", "local/support-ft@2"
    from_value: Optional[str] = None
    to_value: Optional[str] = None
    reason: Optional[str] = Field(default=None, sa_type=Text)


class ModelAlias(SQLModel, table=True):
    """`local/name@alias` -> one registered version of model NAME."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("project_id", "name", "alias"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    alias: str
    version: int
    updated_at: datetime = Field(default_factory=utcnow)


class ModelAliasEvent(SQLModel, table=True):
    """Every move of a model alias, so that a rollback can undo the last one."""

    __tablename__ = "model_alias_history"
    __table_args__ = (Index("ix_model_alias_history_alias", "project_id", "name", "alias", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    alias: str
    action: str  # "set" or "rollback"
    from_version: Optional[int] = None
    to_version: int
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class AlertRule(SQLModel, table=True):
    """A stored alert: a condition over the traces of a window, maybe tied to a rollback."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    condition: str
    window: str  # as written, e.g. "1h"
    window_s: float
    model: Optional[str] = None
    prompt: Optional[str] = None
    rollback: Optional[str] = None  # "name@alias" (prompt) or "local/name@alias" (model)
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class AlertFiring(SQLModel, table=True):
    """One firing of a rule: the window it measured, the values, and what was rolled back."""

    __tablename__ = "alert_firings"
    __table_args__ = (UniqueConstraint("rule_id", "window_end"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    rule_id: int = Field(foreign_key="alert_rules.id", index=True)
    window_start: datetime
    window_end: datetime
    measured: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    message: str = Field(sa_type=Text)
    rollback: Optional[str] = Field(default=None, sa_type=Text)  # "v3 -> v2", or None
    created_at: datetime = Field(default_factory=utcnow)


# --- A/B splits and model routers --------------------------------------------------


class PromptSplit(SQLModel, table=True):
    """An A/B split of one prompt's traffic between arms (aliases or versions)."""

    __tablename__ = "prompt_split"
    __table_args__ = (UniqueConstraint("prompt_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id")
    # in order, the first is the control: [{"arm", "alias" | "version", "weight"}]
    arms: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    author: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class Router(SQLModel, table=True):
    """A named router over models (`router/NAME`): its policy and limits."""

    __tablename__ = "router"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    name: str
    policy: str  # cheapest, fastest, fallback
    models: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)  # [{model, api_base}]
    max_p95_ms: Optional[float] = None
    max_cost: Optional[float] = None
    stats_window: str = "1h"  # how far back the traces it ranks models by go
    author: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
