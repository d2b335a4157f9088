"""What a notebook touched: prompt versions, eval runs, traces and fine-tunes.

Found in the saved outputs first: the panels' widget state (their view data, when the
notebook kept it), else the lines the panels and service objects print
("created: greet v2", "eval faq #3: done...", "trace NAME <id> · ..."). The store's
notebook_path columns add what the outputs do not show (see appendix.touched_in_store).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

_PROMPT_LINE = re.compile(
    r"^(?:created|unchanged|registered|updated): ([A-Za-z_][A-Za-z0-9_.\-]*) v(\d+)\s*$", re.M
)
_EVAL_LINE = re.compile(r"^(?:eval \S+ #|EvalRun #)(\d+)\b", re.M)
_TRACE_LINE = re.compile(r"^(?:trace .*? |<Trace .*? )([0-9a-f]{32})\b", re.M)
_FINETUNE_LINE = re.compile(r"^(?:finetune|fine-tune) \S+ #(\d+)\b", re.M)


@dataclass
class Touched:
    """Everything a notebook touched, in first-seen order (dicts keep it, and dedupe)."""

    prompts: dict[tuple[str | None, str, int], None] = field(default_factory=dict)
    eval_runs: dict[int, None] = field(default_factory=dict)
    traces: dict[str, None] = field(default_factory=dict)
    finetunes: dict[int, None] = field(default_factory=dict)
    projects: dict[str, None] = field(default_factory=dict)

    def merge(self, other: Touched) -> None:
        for name in ("prompts", "eval_runs", "traces", "finetunes", "projects"):
            getattr(self, name).update(getattr(other, name))

    def empty(self) -> bool:
        return not (self.prompts or self.eval_runs or self.traces or self.finetunes)


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    """model id -> widget state, from the notebook's saved widget state (if any)."""
    saved = (nb.get("metadata") or {}).get("widgets") or {}
    state = (saved.get(WIDGET_STATE) or {}).get("state") or {}
    return state if isinstance(state, dict) else {}


def panel_kind(state: dict[str, Any] | None) -> str | None:
    """'prompt', 'trace', 'eval' or 'finetune' for one of our panels' saved state."""
    widget_id = str(((state or {}).get("state") or {}).get("_anywidget_id") or "")
    if not widget_id.startswith("llmops_nb."):
        return None
    for kind, marker in (
        ("prompt", "prompt_panel"),
        ("trace", "trace_viewer"),
        ("eval", "eval_grid"),
        ("finetune", "finetune"),
    ):
        if marker in widget_id:
            return kind
    return None


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def output_refs(output: Any, states: dict[str, dict[str, Any]]) -> Touched:
    """The things one cell output refers to."""
    found = Touched()
    data = output.get("data") or {}
    view = data.get(WIDGET_VIEW)
    state = states.get(str(view.get("model_id"))) if isinstance(view, dict) else None
    kind = panel_kind(state)
    if kind is not None and state is not None:
        _from_view_data(kind, (state.get("state") or {}).get("data") or {}, found)
    text = _text(output.get("text")) + "\n" + _text(data.get("text/plain"))
    for name, version in _PROMPT_LINE.findall(text):
        found.prompts.setdefault((None, name, int(version)), None)
    for run_id in _EVAL_LINE.findall(text):
        found.eval_runs.setdefault(int(run_id), None)
    for trace_id in _TRACE_LINE.findall(text):
        found.traces.setdefault(trace_id, None)
    for job_id in _FINETUNE_LINE.findall(text):
        found.finetunes.setdefault(int(job_id), None)
    return found


def _from_view_data(kind: str, data: dict[str, Any], found: Touched) -> None:
    project = data.get("project")
    if isinstance(project, str) and project:
        found.projects.setdefault(project, None)
    if kind == "prompt" and data.get("name") and str(data.get("version", "")).isdigit():
        found.prompts.setdefault((project or None, str(data["name"]), int(data["version"])), None)
        trace_id = (data.get("response") or {}).get("trace_id")
        if isinstance(trace_id, str) and trace_id:
            found.traces.setdefault(trace_id, None)
    elif kind == "eval" and str(data.get("id", "")).isdigit():
        found.eval_runs.setdefault(int(data["id"]), None)
    elif kind == "trace" and isinstance(data.get("id"), str):
        found.traces.setdefault(data["id"], None)
    elif kind == "finetune" and str(data.get("id", "")).isdigit():
        found.finetunes.setdefault(int(data["id"]), None)


def notebook_refs(nb: Any) -> Touched:
    """Everything the saved outputs of NB refer to."""
    states = widget_states(nb)
    found = Touched()
    for cell in nb.get("cells") or []:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs") or []:
            found.merge(output_refs(output, states))
    return found
