"""A fine-tune job -> the plain data its panel, static HTML and report render."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..finetuning.job import FineTuneJob

__all__ = ["MAX_POINTS", "finetune_view"]

MAX_POINTS = 400  # per curve: enough for a smooth line, small enough to send every second


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _thin(points: list[list[float]]) -> list[list[float]]:
    """At most MAX_POINTS evenly spaced points, always keeping the last one."""
    if len(points) <= MAX_POINTS:
        return points
    stride = math.ceil(len(points) / MAX_POINTS)
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])


def finetune_view(job: FineTuneJob) -> dict[str, Any]:
    """Status, progress, the train and eval loss curves, speed, ETA and the latest samples."""
    status = job.status  # fresh from the store (and a dead worker noticed)
    row = job.row
    rows = job.metric_rows()
    train = [[r["step"], _num(r["loss"])] for r in rows if _num(r.get("loss")) is not None]
    evals = [
        [r["step"], _num(r["eval_loss"])] for r in rows if _num(r.get("eval_loss")) is not None
    ]
    last = job.last_metrics()
    total = last.get("total_steps")
    step = train[-1][0] if train else last.get("step")
    return {
        "id": job.id,
        "name": row.name,
        "status": status,
        "active": status in ("queued", "running"),
        "base": row.base,
        "method": row.method,
        "backend": row.backend,
        "model": job.model,
        "error": row.error,
        "created": row.created_at.isoformat(timespec="seconds") if row.created_at else None,
        "step": int(step) if step is not None else None,
        "total_steps": int(total) if total is not None else None,
        "epoch": _num(last.get("epoch")),
        "loss": train[-1][1] if train else None,
        "eval_loss": evals[-1][1] if evals else None,
        "lr": _num(last.get("lr")),
        "tokens_per_s": _num(last.get("tokens_per_s")),
        "peak_mem_mb": _num(last.get("peak_mem_mb")),
        "eta_s": _num(last.get("eta_s")) if status == "running" else None,
        "train": _thin(train),
        "eval": _thin(evals),
        "samples": job.samples(),
        "params": {k: v for k, v in (row.params or {}).items() if k in _SHOWN_PARAMS},
    }


_SHOWN_PARAMS = (
    "r",
    "alpha",
    "epochs",
    "lr",
    "batch_size",
    "max_steps",
    "prompt_ref",
    "dataset_ref",
)
