"""The worker processes: start one in its own process group, watch it, stop it, and tell
whether it still lives.

`launcher` starts workers and `job` follows and stops them; both use this module, which
knows neither of them, so the package's imports run one way only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import config
from ..errors import LLMOpsError

__all__ = ["ACTIVE", "mark_exited", "pid_alive", "process", "start_worker", "stop_group"]

ACTIVE = ("queued", "running")
_CANCEL_GRACE_S = 10.0

_processes: dict[int, subprocess.Popen[bytes]] = {}


def start_worker(job_id: int, output_dir: Path, store_url: str, project: str) -> None:
    """Start `python -m llmops_nb.finetuning.worker JOB_ID` in its own session (process
    group), record its pid, and watch it: a worker that dies unsaid fails its job."""
    from ..store import get_store

    store = get_store(store_url)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "LLMOPS_NB_STORE": store_url,
            "LLMOPS_NB_HOME": str(config.home()),
            "LLMOPS_NB_PROJECT": project,
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
        with open(output_dir / "worker.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "llmops_nb.finetuning.worker", str(job_id)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=output_dir,
                env=env,
                start_new_session=True,
            )
    except OSError as exc:
        store.update_finetune_job(
            job_id, only_from=("queued",), status="failed", error=f"cannot start the worker: {exc}"
        )
        raise LLMOpsError(f"cannot start the fine-tune worker: {exc}") from None
    store.update_finetune_job(job_id, pid=proc.pid)
    _processes[job_id] = proc
    threading.Thread(
        target=_watch, args=(job_id, proc, store_url), name=f"llmops-finetune-{job_id}", daemon=True
    ).start()


def _watch(job_id: int, proc: subprocess.Popen[bytes], store_url: str) -> None:
    """Wait for the worker (reaping it); if the job is still active then, it died unsaid."""
    code = proc.wait()
    _processes.pop(job_id, None)
    mark_exited(job_id, code, store_url)


def process(job_id: int) -> subprocess.Popen[bytes] | None:
    """The worker this kernel started for JOB_ID, while it runs."""
    return _processes.get(job_id)


def pid_alive(pid: int) -> bool:
    """Whether PID is a live fine-tune worker (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            return b"llmops_nb.finetuning.worker" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def mark_exited(job_id: int, code: int | None, store_url: str) -> None:
    """The worker of JOB_ID is gone: if the job is still active, it failed; say how."""
    from ..store import get_store

    if code is None:
        how = "is gone"
    elif code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    get_store(store_url).update_finetune_job(
        job_id,
        only_from=ACTIVE,
        status="failed",
        error=f"the worker process {how} before the job finished (see job.logs())",
    )


def stop_group(job_id: int, pid: int) -> None:
    """SIGTERM the worker's process group, then SIGKILL it if it lingers."""
    ours = process(job_id) is not None  # then its watcher thread reaps it
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + _CANCEL_GRACE_S
    while time.monotonic() < deadline:
        gone = process(job_id) is None if ours else not pid_alive(pid)
        if gone:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
