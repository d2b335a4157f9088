"""`lo.finetune(..., executor="ray")`: the fine-tune worker as a Ray task.

The task runs the worker's own training code (`worker._train`) with the GPUs and CPUs
asked for, but never opens the store: the driver reads the job's plan from the store
first, and inside the task the worker's store is a relay that sends every write (status,
metrics, sample generations, log lines) to a small channel actor. A thread in the
driver drains that channel into the store, as the subprocess worker would have written
it, and tells the task when the job was cancelled. The adapter comes back as files, which
the driver writes into the job's folder and registers, so the task may run on any node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import FineTuneError
from .processes import ACTIVE

__all__ = ["ray_resources", "start_ray_worker"]

POLL_S = 0.5  # how often the driver drains the channel and checks for a cancel


def ray_resources(
    executor: str | None, num_cpus: float | None, num_gpus: float | None
) -> dict[str, float]:
    """The Ray task's resources when the job runs on Ray, else {}; Ray is connected and
    checked to fit them here, before the launcher writes anything."""
    from .. import config, ray_cluster

    chosen = executor if executor is not None else config.settings.executor
    if chosen not in ("local", "ray"):
        raise FineTuneError(f"executor must be 'local' or 'ray', not {chosen!r}")
    if chosen == "local":
        return {}
    s = config.settings
    resources = {
        "num_cpus": s.ray_num_cpus if num_cpus is None else num_cpus,
        "num_gpus": s.ray_num_gpus if num_gpus is None else num_gpus,
    }
    for key, value in resources.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise FineTuneError(f"ray_{key} must be a number of at least 0, not {value!r}")
    ray_cluster.connect()
    ray_cluster.check_fits("the fine-tune task", **resources)
    return resources


class JobChannel:
    """The Ray actor between the task and the driver: messages one way, cancel the other."""

    def __init__(self) -> None:
        self._messages: list[tuple[str, Any]] = []
        self._cancelled = False

    def put(self, kind: str, payload: Any) -> None:
        self._messages.append((kind, payload))

    def drain(self) -> list[tuple[str, Any]]:
        messages, self._messages = self._messages, []
        return messages

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class _Relay:
    """What the worker's code sees as its store inside the task: writes go to the driver."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def cancelled(self) -> bool:
        import ray

        return bool(ray.get(self.channel.cancelled.remote()))

    def update_finetune_job(self, job_id: int, **changes: Any) -> bool:
        self.channel.put.remote("update", changes)
        return not self.cancelled()

    def add_finetune_metrics(self, job_id: int, rows: list[dict[str, Any]]) -> None:
        self.channel.put.remote("metrics", rows)

    def finetune_job(self, job_id: int) -> Any:
        return SimpleNamespace(status="cancelled" if self.cancelled() else "running")


class _LogLines(io.TextIOBase):
    """The task's stdout, line by line, to the driver (which appends it to worker.log)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def write(self, text: str) -> int:
        if text:
            self.channel.put.remote("log", text)
        return len(text)


def _train_task(plan: Any, channel: Any) -> None:
    """The Ray task: train in a scratch folder of this node, relaying every write."""
    import traceback

    from . import worker

    relay = _Relay(channel)
    scratch = Path(tempfile.mkdtemp(prefix="llmops-ft-"))

    def send_adapter(plan: Any, adapter_dir: Path, backend: str, metrics: dict) -> None:
        files = {
            str(p.relative_to(adapter_dir)): p.read_bytes()
            for p in sorted(adapter_dir.rglob("*"))
            if p.is_file()
        }
        channel.put.remote("register", {"files": files, "backend": backend, "metrics": metrics})

    saved = worker.get_store, worker._register
    worker.get_store, worker._register = (lambda *a, **k: relay), send_adapter
    try:
        with contextlib.redirect_stdout(_LogLines(channel)):
            if relay.cancelled():
                raise worker.Cancelled()
            try:
                worker._train(dataclasses.replace(plan, output_dir=scratch))
            except (worker.Terminated, worker.Cancelled):
                worker._say("stopped: the job was cancelled")
                relay.update_finetune_job(plan.job_id, only_from=ACTIVE, status="cancelled")
            except BaseException as exc:
                print(traceback.format_exc())
                error = worker._one_line(exc)
                relay.update_finetune_job(
                    plan.job_id, only_from=ACTIVE, status="failed", error=error
                )
    finally:
        worker.get_store, worker._register = saved
        shutil.rmtree(scratch, ignore_errors=True)
        import ray

        ray.get(channel.put.remote("end", None))  # every message above is in the channel


def start_ray_worker(
    job_id: int, output_dir: Path, store_url: str, *, num_cpus: float, num_gpus: float
) -> None:
    """Mark the job running, submit its Ray task, and follow it from a driver thread."""
    import ray

    from ..store import get_store
    from . import worker

    store = get_store(store_url)
    output_dir.mkdir(parents=True, exist_ok=True)
    plan = worker._plan(job_id)  # the driver reads the store; the task gets plain data
    channel = ray.remote(JobChannel).options(num_cpus=0).remote()
    task = (
        ray.remote(_train_task)
        .options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
        .remote(plan, channel)
    )
    store.update_finetune_job(job_id, only_from=("queued",), status="running")
    threading.Thread(
        target=_follow,
        args=(plan, task, channel, store_url),
        name=f"llmops-finetune-ray-{job_id}",
        daemon=True,
    ).start()


def _follow(plan: Any, task: Any, channel: Any, store_url: str) -> None:
    """Write what the task relays into the store until it ends; a task that dies fails its job."""
    import ray

    from ..store import get_store

    store = get_store(store_url)
    log_path = plan.output_dir / "worker.log"
    try:
        while True:
            finished, _ = ray.wait([task], timeout=POLL_S)
            for kind, payload in ray.get(channel.drain.remote()):
                _apply(store, plan, kind, payload, log_path)
            if store.finetune_job(plan.job_id).status == "cancelled":
                channel.cancel.remote()
            if finished:
                break
        try:
            ray.get(task)
        except Exception as exc:  # the task's process died (killed, out of memory, lost node)
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            store.update_finetune_job(
                plan.job_id, only_from=ACTIVE, status="failed",
                error=f"the Ray task ended before the job finished: {text}",
            )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            ray.kill(channel)


def _apply(store: Any, plan: Any, kind: str, payload: Any, log_path: Path) -> None:
    from . import worker

    if kind == "log":
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(payload)
    elif kind == "metrics":
        store.add_finetune_metrics(plan.job_id, payload)
    elif kind == "update":
        store.update_finetune_job(plan.job_id, **payload)
    elif kind == "register":
        adapter_dir = plan.output_dir / "adapter"
        try:
            for name, data in payload["files"].items():
                target = adapter_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            worker._register(plan, adapter_dir, payload["backend"], payload["metrics"])
        except Exception as exc:  # then the task's "completed" finds the job no longer running
            store.update_finetune_job(
                plan.job_id, only_from=ACTIVE, status="failed", error=worker._one_line(exc)
            )
