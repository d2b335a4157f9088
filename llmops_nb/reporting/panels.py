"""The report's only door into the panels: every view and static rendering it shows.

The report never renders a prompt, trace, eval run or fine-tune itself: it asks the
same code the live panel uses, so the numbers agree everywhere. Keeping every such
call here means one module changes when the view layer does.
"""

from __future__ import annotations

from typing import Any


def eval_html(run: Any) -> str:
    """The eval grid's static rendering: its heatmaps (inline SVG), summary, regressions
    against the baseline. (Not run.chart(): altair costs seconds to import, and the
    grid's heatmaps are the same view.)"""
    from ..widgets.eval_grid import eval_grid_html, grid_data

    return eval_grid_html(grid_data(run))


def trace_html(trace: Any) -> str:
    """The trace viewer's static rendering: span tree, waterfall, inputs/outputs, tokens, cost."""
    from ..widgets.trace_viewer import trace_html as render
    from ..widgets.trace_viewer import trace_view_data

    return render(trace_view_data(trace))


def prompt_html(version: Any) -> str:
    """The prompt panel's static rendering: version, aliases, history, diff to the previous."""
    from ..prompting import panel_data
    from ..widgets.prompt_panel import prompt_panel_html

    return prompt_panel_html(panel_data(version))


def finetune_available() -> bool:
    """Fine-tunes are shown only when the fine-tune service is part of this install."""
    try:
        import llmops_nb.finetune  # noqa: F401
        import llmops_nb.views.finetunes  # noqa: F401
        import llmops_nb.widgets.finetune_panel  # noqa: F401
    except ImportError:
        return False
    return True


def finetune_html(job_ref: int | str) -> str | None:
    """The fine-tune panel's static rendering (parameters, loss curve, lineage), or None
    when this install has no fine-tune service."""
    if not finetune_available():
        return None
    from .. import finetune
    from ..views.finetunes import finetune_view
    from ..widgets.finetune_panel import static_html

    return str(static_html(finetune_view(finetune.finetune_job(job_ref))))


def svg(chart: Any) -> str:
    """A chart (an altair chart or a Vega-Lite dict) as inline SVG, drawn by vl-convert."""
    import vl_convert

    spec = chart if isinstance(chart, dict) else chart.to_dict()
    version = str(spec.get("$schema", "")).rsplit("/v", 1)[-1].removesuffix(".json")
    major_minor = ".".join(version.split(".")[:2])
    supported = vl_convert.get_vegalite_versions()
    kwargs = {"vl_version": major_minor} if major_minor in supported else {}
    return str(vl_convert.vegalite_to_svg(spec, **kwargs))
