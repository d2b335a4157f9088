"""FineTuneJob: a handle on one fine-tune job in the store, from any kernel.

Everything it reports is read from the store, so a job started in one kernel can be
followed, cancelled and exported from another (or after a restart). A worker that died
without reporting is noticed here too: its job is then marked failed.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FineTuneError, LLMOpsError
from .processes import ACTIVE, mark_exited, pid_alive, process, stop_group

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from ..store import models as m

__all__ = ["ACTIVE", "FINISHED", "FineTuneJob", "FineTuneTimeout"]

FINISHED = ("completed", "failed", "cancelled")
# metric columns every frame has, in this order (more follow when the worker reports them)
METRIC_COLUMNS = ("step", "epoch", "loss", "eval_loss", "lr", "tokens_per_s", "peak_mem_mb")


class FineTuneTimeout(LLMOpsError, TimeoutError):
    """`job.wait(timeout=...)` ran out before the job finished."""


class FineTuneJob:
    """One fine-tune job: status, metrics, logs, cancel, export. `lo.finetune` returns one."""

    def __init__(
        self,
        job_id: int,
        *,
        project: str,
        row: m.FinetuneJob | None = None,
        store_url: str | None = None,
    ) -> None:
        from ..store import get_store

        self.id = job_id
        self.project = project
        self._row = row
        # bound to the store it lives in, whatever LLMOPS_NB_STORE says later
        self.store_url = store_url or get_store().url

    def _store(self) -> Store:
        from ..store import get_store

        return get_store(self.store_url)

    # --- state ---------------------------------------------------------------------

    @property
    def row(self) -> m.FinetuneJob:
        if self._row is None:
            self.refresh()
        assert self._row is not None
        return self._row

    def refresh(self) -> FineTuneJob:
        self._row = self._store().finetune_job(self.id)
        return self

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def status(self) -> str:
        """queued, running, completed, failed or cancelled (read fresh from the store)."""
        self.refresh()
        self.check_alive()
        return self.row.status

    @property
    def error(self) -> str | None:
        self.refresh()
        return self.row.error

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def model(self) -> str:
        """The registered model this job produces, for lo.complete and %%eval."""
        return f"local/{self.name}"

    @property
    def base(self) -> str:
        return self.row.base

    @property
    def backend(self) -> str:
        return self.refresh().row.backend

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.row.params or {})

    @property
    def output_dir(self) -> Path:
        return Path(self.row.output_dir or ".")

    @property
    def adapter_path(self) -> Path:
        return self.output_dir / "adapter"

    @property
    def created_at(self) -> datetime:
        return self.row.created_at

    def check_alive(self) -> None:
        """Mark the job failed when it is active but its worker (on this host) is gone."""
        row = self._row
        if row is None or row.status not in ACTIVE or row.pid is None:
            return
        if (row.params or {}).get("host") != socket.gethostname() or pid_alive(row.pid):
            return
        if process(self.id) is not None:  # ours and not yet reaped: the watcher decides
            return
        mark_exited(self.id, None, self.store_url)
        self.refresh()

    # --- metrics and logs ------------------------------------------------------------

    def metric_rows(self) -> list[dict[str, Any]]:
        """Every stored metric record, merged by step: train loss and eval loss side by side."""
        by_step: dict[int, dict[str, Any]] = {}
        for r in self._store().finetune_metrics(self.id):
            merged = by_step.setdefault(r.step, {"step": r.step})
            values = {"epoch": r.epoch, "loss": r.loss, "lr": r.lr, **(r.extra or {})}
            for key, value in values.items():
                if value is not None and key != "samples":
                    merged[key] = value
        return [by_step[s] for s in sorted(by_step)]

    @property
    def metrics(self) -> pl.DataFrame:
        """polars, one row per logged step: step, epoch, loss, eval_loss, lr, tokens_per_s,
        peak_mem_mb, eta_s, ..."""
        import polars as pl

        rows = self.metric_rows()
        extra = sorted({k for r in rows for k in r} - set(METRIC_COLUMNS))
        schema: dict[str, Any] = {c: pl.Float64 for c in (*METRIC_COLUMNS, *extra)}
        schema["step"] = pl.Int64
        records = [{c: r.get(c) for c in schema} for r in rows]
        return pl.DataFrame(records, schema=schema)

    def last_metrics(self) -> dict[str, Any]:
        """The latest value of every metric (the latest loss, the latest eval loss, ...)."""
        latest: dict[str, Any] = {}
        for row in self.metric_rows():
            latest.update(row)
        return latest

    def samples(self) -> list[dict[str, Any]]:
        """The sample generations of the latest eval: prompt, expected, output, step."""
        for r in reversed(self._store().finetune_metrics(self.id)):
            samples = (r.extra or {}).get("samples")
            if samples:
                return [{**s, "step": r.step} for s in samples]
        return []

    def logs(self, tail: int | None = None) -> str:
        """The worker's output (its log file on the machine that ran it); the last TAIL lines."""
        path = self.output_dir / "worker.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    # --- control ---------------------------------------------------------------------

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> FineTuneJob:
        """Block until the job has finished (completed, failed or cancelled); returns the job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status in ACTIVE:
            if deadline is not None and time.monotonic() >= deadline:
                raise FineTuneTimeout(
                    f"fine-tune job {self.name!r} (#{self.id}) is still {self.row.status} after "
                    f"{timeout:g} s; wait again, or job.cancel()"
                )
            time.sleep(poll)
        return self

    def cancel(self) -> FineTuneJob:
        """Stop the job: mark it cancelled, then end its worker's process group."""
        store = self._store()
        if not store.update_finetune_job(
            self.id, only_from=ACTIVE, status="cancelled", error="cancelled by the user"
        ):
            status = self.refresh().row.status
            raise FineTuneError(
                f"fine-tune job {self.name!r} (#{self.id}) already {status}: "
                "there is nothing to cancel"
            )
        from ..config import author

        store.append_audit(
            self.project, "finetune cancelled", self.name, author=author(), to_value="cancelled"
        )
        self.refresh()
        pid = self.row.pid
        if pid is not None and (self.row.params or {}).get("host") == socket.gethostname():
            stop_group(self.id, pid)
        return self

    def export(self, path: str | Path, merge: bool = True) -> Path:
        """Write the model to PATH: merged full weights (merge=True, loadable by plain
        transformers) or the LoRA adapter alone."""
        from .export import export_model

        if self.status != "completed":
            raise FineTuneError(
                f"fine-tune job {self.name!r} (#{self.id}) is {self.row.status}: only a "
                "completed job can be exported"
            )
        if not self.adapter_path.is_dir():
            raise FineTuneError(
                f"the adapter of job {self.name!r} is not on this machine ({self.adapter_path})"
            )
        return export_model(self.params["base_path"], self.adapter_path, Path(path), merge=merge)

    def __repr__(self) -> str:
        last = self.last_metrics()
        loss = f", loss {last['loss']:.4f}" if last.get("loss") is not None else ""
        step = f", step {last['step']}" if last.get("step") else ""
        error = f": {self.row.error}" if self.row.error and self.row.status == "failed" else ""
        return (
            f"FineTuneJob #{self.id} {self.name!r} ({self.row.base} -> {self.model}): "
            f"{self.status}{step}{loss}{error}"
        )
