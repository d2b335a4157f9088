"""Running a grid's event loop beside the notebook's, and showing its progress.

The loop runs in its own thread (a notebook's loop is already running); the calling
thread draws the progress and turns Ctrl-C into a cancel. Progress is drawn from the
absolute count of finished cells, read once per tick, so the bar ends at the count the
run really finished. In a notebook it is a plain HTML/text output updated in place, so
the saved notebook shows the final state.
"""

from __future__ import annotations

import asyncio
import html
import sys
import threading
from typing import Any

__all__ = ["drive"]


def drive(executor: Any, todo: int, progress: bool, label: str) -> None:
    """Run the executor's event loop in its own thread (a notebook's loop is already
    running); this thread draws the progress bar and turns Ctrl-C into a cancel."""
    holder: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        holder["task"] = asyncio.current_task()
        ready.set()
        await executor.execute()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # re-raised in the calling thread
            holder["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="llmops-eval-grid", daemon=True)
    thread.start()
    bar = _progress_bar(todo, label) if progress and todo > 0 else None
    try:
        while thread.is_alive():
            thread.join(0.1)
            if bar is not None:
                bar.show(executor.completed)
    except KeyboardInterrupt:
        ready.wait()
        loop, task = holder.get("loop"), holder.get("task")
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    finally:
        if bar is not None:
            bar.close(executor.completed, stored=not executor.buffer)
    error = holder.get("error")
    if error is not None and not isinstance(error, asyncio.CancelledError):
        raise error


def _progress_bar(total: int, label: str) -> _NotebookProgress | _TerminalProgress | None:
    if _in_notebook():
        return _NotebookProgress(total, label)
    try:
        return _TerminalProgress(total, label)
    except ImportError:
        return None


class _TerminalProgress:
    """tqdm on stderr; `show` takes the absolute count of finished cells."""

    def __init__(self, total: int, label: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="call", dynamic_ncols=True, mininterval=0.2)

    def show(self, completed: int) -> None:
        if completed > self.bar.n:
            self.bar.update(completed - self.bar.n)

    def close(self, completed: int, stored: bool = True) -> None:
        self.show(completed)
        self.bar.close()


class _NotebookProgress:
    """A plain HTML/text progress output updated in place: what the notebook saves is
    the last state (a widget would be saved as its first, '0/80'), and it needs no
    widget manager to show."""

    def __init__(self, total: int, label: str) -> None:
        from IPython.display import display

        self.total, self.label, self.shown = total, label, -1
        self.handle = display(self._bundle(0, "running"), raw=True, display_id=True)

    def show(self, completed: int) -> None:
        if completed != self.shown:
            self.shown = completed
            self.handle.update(self._bundle(completed, "running"), raw=True)

    def close(self, completed: int, stored: bool = True) -> None:
        state = "done" if completed >= self.total and stored else "stopped"
        self.handle.update(self._bundle(completed, state), raw=True)

    def _bundle(self, completed: int, state: str) -> dict[str, str]:
        percent = int(100 * completed / self.total) if self.total else 100
        words = {"running": "", "done": " done", "stopped": " stopped"}[state]
        line = f"{self.label}: {percent}% {completed}/{self.total} cells{words}"
        colour = {"running": "#1976d2", "done": "#2e7d32", "stopped": "#c62828"}[state]
        bar = (
            f'<div class="llmops-progress" style="font-family:monospace">'
            f'<progress max="{self.total}" value="{completed}" '
            f'style="width:16em;accent-color:{colour};vertical-align:middle"></progress> '
            f"{html.escape(line)}</div>"
        )
        return {"text/plain": line, "text/html": bar}


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"
