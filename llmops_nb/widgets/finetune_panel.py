"""The fine-tune panel: status, live loss curves (train and eval), tokens/s, ETA, the latest
sample generations and a Cancel button.

While the job runs, a daemon thread re-reads the view from the store every second and sets
the `view` trait, so the panel updates without re-running the cell; it stops once the job
has finished. `static_html` is the fallback (inline SVG curves) for reports and frontends
without widgets. Sample generations are model output: escaped everywhere.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from . import STATIC, stylesheet

if TYPE_CHECKING:
    from ..finetuning.job import FineTuneJob

__all__ = ["FineTunePanel", "loss_svg", "mimebundle", "static_html", "summary_text"]

POLL_S = 1.0


class FineTunePanel(anywidget.AnyWidget):
    """A live view of one fine-tune job (data from `views.finetunes.finetune_view`)."""

    _esm = STATIC / "finetune_panel.js"
    _css = stylesheet("panel.css", "finetune_panel.css")
    view = traitlets.Dict().tag(sync=True)

    def __init__(self, job: FineTuneJob, *, poll_s: float = POLL_S, **kwargs: Any) -> None:
        from ..views.finetunes import finetune_view

        super().__init__(view=finetune_view(job), **kwargs)
        self._job = job
        self._stop = threading.Event()
        self._finished_lock = threading.Lock()
        self._on_finish: Callable[[], None] | None = None
        self.on_msg(self._on_message)
        self._poller: threading.Thread | None = None
        if self.view.get("active"):
            self._poller = threading.Thread(
                target=self._poll, args=(poll_s,), name=f"llmops-ft-panel-{job.id}", daemon=True
            )
            self._poller.start()

    def _poll(self, every: float) -> None:
        from ..views.finetunes import finetune_view

        while not self._stop.wait(every):
            try:
                view = finetune_view(self._job)
            except Exception:  # the store is briefly unreachable: try again next tick
                continue
            if view != self.view:
                self.view = view
            if not view.get("active"):
                self._finished()
                return

    def when_finished(self, callback: Callable[[], None]) -> None:
        """Call CALLBACK once, when the job has finished (at once if it already has): the
        notebook refreshes the output's saved copy, which was made while the job queued."""
        with self._finished_lock:
            self._on_finish = callback
        if not self.view.get("active") or self._poller is None or not self._poller.is_alive():
            self._finished()

    def _finished(self) -> None:
        with self._finished_lock:
            callback, self._on_finish = self._on_finish, None
        if callback is not None:
            callback()

    def stop(self) -> None:
        """Stop following the job (the panel keeps its last state)."""
        self._stop.set()

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The Cancel button."""
        if not isinstance(content, dict) or content.get("type") != "cancel":
            return
        from ..errors import LLMOpsError
        from ..views.finetunes import finetune_view

        try:
            self._job.cancel()
            message = None
        except LLMOpsError as exc:
            message = str(exc)
        self.view = {**finetune_view(self._job), "notice": message}

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = static_html(self.view)
        data["text/plain"] = summary_text(self.view)
        return data, meta


def mimebundle(job: FineTuneJob) -> dict[str, Any]:
    """What a notebook shows for a FineTuneJob: the live panel, its static HTML and text."""
    data, _ = FineTunePanel(job)._repr_mimebundle_()
    return data


# --- text and static HTML ---------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{float(value):.{digits}g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def progress_text(view: dict[str, Any]) -> str:
    """ "step 40/100 · loss 1.23 · eval 1.31 · 512 tok/s · ETA 0m30s" (what both faces show)."""
    parts = []
    if view.get("step") is not None:
        total = view.get("total_steps")
        parts.append(f"step {view['step']}" + (f"/{total}" if total else ""))
    if view.get("loss") is not None:
        parts.append(f"loss {_fmt(view['loss'])}")
    if view.get("eval_loss") is not None:
        parts.append(f"eval loss {_fmt(view['eval_loss'])}")
    if view.get("tokens_per_s") is not None:
        parts.append(f"{view['tokens_per_s']:.0f} tok/s")
    if view.get("peak_mem_mb") is not None:
        parts.append(f"peak {view['peak_mem_mb']:.0f} MB")
    if view.get("eta_s") is not None:
        parts.append(f"ETA {_duration(view['eta_s'])}")
    return " · ".join(parts)


def summary_text(view: dict[str, Any]) -> str:
    head = (
        f"fine-tune {view.get('name')} #{view.get('id')}: {view.get('status')} "
        f"({view.get('base')} -> {view.get('model')}, {view.get('method')}, {view.get('backend')})"
    )
    lines = [head]
    progress = progress_text(view)
    if progress:
        lines.append("  " + progress)
    if view.get("error") and view.get("status") == "failed":
        lines.append(f"  error: {view['error']}")
    return "\n".join(lines)


def loss_svg(view: dict[str, Any], width: int = 480, height: int = 180) -> str:
    """Train (solid) and eval (dashed) loss by step as inline SVG."""
    train, evals = view.get("train") or [], view.get("eval") or []
    points = train + evals
    if not points:
        return '<p class="lonb-muted">no loss reported yet</p>'
    left, right, top, bottom = 44, 10, 10, 24
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = lambda x: left + (x - x0) / max(1e-9, x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: top + (1 - (y - y0) / max(1e-9, y1 - y0)) * (height - top - bottom)  # noqa: E731

    def line(series: list[list[float]], cls: str, dash: str) -> str:
        if not series:
            return ""
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in series)
        return (
            f'<polyline class="{cls}" points="{coords}" fill="none" stroke-width="2" '
            f'stroke="{"#3b6fd8" if cls == "lonb-ft-train" else "#d8703b"}"{dash}/>'
        )

    axis = 'stroke="#999" stroke-width="1"'
    base_y = height - bottom
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lonb-ft-curve" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="loss curve">'
        f'<line x1="{left}" y1="{base_y}" x2="{width - right}" y2="{base_y}" {axis}/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base_y}" {axis}/>'
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{y1:.3g}</text>'
        f'<text x="{left - 4}" y="{base_y}" font-size="10" text-anchor="end">{y0:.3g}</text>'
        f'<text x="{left}" y="{height - 8}" font-size="10">step {x0:g}</text>'
        f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">{x1:g}</text>'
        + line(train, "lonb-ft-train", "")
        + line(evals, "lonb-ft-eval", ' stroke-dasharray="5,3"')
        + f'<text x="{width - right}" y="{top + 8}" font-size="10" text-anchor="end">'
        "train — eval - -</text></svg>"
    )


def static_html(view: dict[str, Any]) -> str:
    """Self-contained, escaped HTML of the panel (no script): reports and saved notebooks."""
    css = stylesheet("panel.css", "finetune_panel.css")
    status = _e(view.get("status"))
    head = (
        f'<div class="lonb-head"><span class="lonb-title">fine-tune {_e(view.get("name"))}</span>'
        f' <span class="lonb-badge">#{_e(view.get("id"))}</span>'
        f' <span class="lonb-status lonb-ft-{status}">{status}</span>'
        f'<span class="lonb-muted"> {_e(view.get("base"))} → {_e(view.get("model"))} · '
        f"{_e(view.get('method'))} · {_e(view.get('backend'))}</span></div>"
    )
    parts = [head, f'<div class="lonb-stats">{_e(progress_text(view))}</div>']
    if view.get("error") and view.get("status") in ("failed", "cancelled"):
        parts.append(f'<div class="lonb-error">{_e(view["error"])}</div>')
    parts += ["<h4>Loss</h4>", loss_svg(view)]
    samples = view.get("samples") or []
    if samples:
        body = "".join(
            f"<tr><td><pre>{_e(s.get('prompt'))}</pre></td><td><pre>{_e(s.get('expected'))}"
            f"</pre></td><td><pre>{_e(s.get('output'))}</pre></td></tr>"
            for s in samples
        )
        parts.append(
            f"<h4>Samples at step {_e(samples[0].get('step'))}</h4>"
            '<table class="lonb-table"><tr><th>prompt</th><th>expected</th><th>output</th></tr>'
            f"{body}</table>"
        )
    return f'<div class="lonb-panel lonb-finetune"><style>{css}</style>{"".join(parts)}</div>'
