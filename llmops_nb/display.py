"""The face that shows service objects: IPython formatters that hand each one to its panel.

Services (prompting, evals, tracing...) never import widgets or views; displaying
their objects is this module's job. `register()` adds a mimebundle formatter per
class in `PANELS`, by module and class name, so nothing is imported until an object
of that class is shown. It runs on `import llmops_nb` inside IPython and on
`%load_ext llmops_nb`, and costs microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import config, monitoring
from .timespans import Duration, Since, Until

__all__ = [
    "PANELS",
    "eval_panel",
    "dashboard",
    "finetune_panel",
    "panel",
    "prompt_panel",
    "register",
    "show_finetune",
    "trace_panel",
]


def prompt_panel(
    version: Any,
    status: str | None = None,
    messages: list[dict[str, str]] | None = None,
    response: dict[str, Any] | None = None,
) -> Any:
    """The prompt panel of a PromptVersion (with what `%%prompt` did, when given)."""
    from .views.prompts import prompt_view
    from .widgets.prompt_panel import PromptPanel

    return PromptPanel(prompt_view(version, status, messages=messages, response=response))


def eval_panel(run: Any) -> Any:
    """The eval grid panel of an EvalRun."""
    from .widgets.eval_grid import EvalGrid

    return EvalGrid(run)


def trace_panel(trace: Any) -> Any:
    """The trace viewer of a Trace."""
    from .widgets.trace_viewer import TraceViewer

    return TraceViewer(trace)


def finetune_panel(job: Any) -> Any:
    """The live fine-tune panel of a FineTuneJob."""
    from .widgets.finetune_panel import FineTunePanel

    return FineTunePanel(job)


def dashboard(
    since: Since = monitoring.DEFAULT_SINCE,
    every: Duration = monitoring.DEFAULT_EVERY,
    by: str = monitoring.DEFAULT_BY,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: Until | None = None,
) -> Any:
    """`lo.dashboard`: the ops dashboard panel (charts over time, static SVG fallback) of
    the LLM calls, the same view as the sidebar's Ops tab (`views.ops.ops_view`)."""
    from .views.ops import ops_view
    from .widgets.dashboard import OpsDashboard

    return OpsDashboard(ops_view(since, every, by, model, prompt, project, until))


def show_finetune(job: Any) -> None:
    """Display a FineTuneJob's panel under a display id, and update that output when the job
    finishes, so the notebook's saved copy (and the report) shows the end, not "queued"."""
    from IPython.display import display

    if not config.settings.display:
        display({"text/plain": repr(job)}, raw=True)
        return
    live = finetune_panel(job)
    data, meta = live._repr_mimebundle_()
    handle = display(data, metadata=meta, raw=True, display_id=True)

    def refresh() -> None:
        latest, latest_meta = live._repr_mimebundle_()
        handle.update(latest, metadata=latest_meta, raw=True)

    live.when_finished(refresh)


# (module, class) -> the function that makes its panel. The module is where the class is
# defined (its __module__), which is what IPython matches on.
PANELS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("llmops_nb.prompting", "PromptVersion"): prompt_panel,
    ("llmops_nb.evals.run", "EvalRun"): eval_panel,
    ("llmops_nb.tracing.records", "Trace"): trace_panel,
    ("llmops_nb.finetuning.job", "FineTuneJob"): finetune_panel,
}


# A job's panel changes after the cell ends: it is displayed with an id and updated at the end.
FINETUNE_JOB = ("llmops_nb.finetuning.job", "FineTuneJob")


def panel(obj: Any) -> Any:
    """The panel for a service object (a widget with a static HTML fallback)."""
    cls = type(obj)
    make = PANELS.get((cls.__module__, cls.__qualname__))
    if make is None:
        raise TypeError(f"no panel for {cls.__module__}.{cls.__qualname__}")
    return make(obj)


def _formatter(make: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def format(obj: Any) -> Any:
        if not config.settings.display:
            return {"text/plain": repr(obj)}
        return make(obj)._repr_mimebundle_()

    return format


def register(ipython: Any = None) -> bool:
    """Add the formatters to IPython (the running shell when IPYTHON is None).

    Returns False when there is no IPython shell to register with."""
    if ipython is None:
        import sys

        if "IPython" not in sys.modules:
            return False
        from IPython import get_ipython

        ipython = get_ipython()
        if ipython is None:
            return False
    formatter = ipython.display_formatter.mimebundle_formatter
    for (module, name), make in PANELS.items():
        if (module, name) != FINETUNE_JOB:
            formatter.for_type_by_name(module, name, _formatter(make))
    ipython.display_formatter.ipython_display_formatter.for_type_by_name(
        *FINETUNE_JOB, show_finetune
    )
    return True
