"""The report's only door into the panels: every view and static rendering it shows.

The report never renders a prompt, trace, eval run or fine-tune itself: it asks the
same code the live panel uses, so the numbers agree everywhere. Keeping every such
call here means one module changes when the view layer does.
"""

from __future__ import annotations

from typing import Any


def eval_html(run: Any) -> str:
    """The eval grid's static rendering of its view: heatmaps (inline SVG), summary and
    regressions against the baseline (not run.chart(): altair costs seconds to import)."""
    from ..views.evals import eval_view
    from ..widgets.eval_grid import static_html

    return static_html(eval_view(run))


def trace_html(trace: Any) -> str:
    """The trace viewer's static rendering: span tree, waterfall, inputs/outputs, tokens, cost."""
    from ..views.traces import trace_view
    from ..widgets.trace_viewer import static_html

    return static_html(trace_view(trace))


def prompt_html(version: Any) -> str:
    """The prompt panel's static rendering: version, aliases, history, diff to the previous."""
    from ..views.prompts import prompt_view
    from ..widgets.prompt_panel import static_html

    return static_html(prompt_view(version))


def finetune_available() -> bool:
    """Fine-tunes are shown only when the fine-tune service is part of this install."""
    try:
        import llmops_nb.finetuning  # noqa: F401
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
    from .. import finetuning
    from ..views.finetunes import finetune_view
    from ..widgets.finetune_panel import static_html

    return str(static_html(finetune_view(finetuning.finetune_job(job_ref))))


def svg(chart: Any) -> str:
    """A chart (an altair chart or a Vega-Lite dict) as sanitized inline SVG."""
    from ..charts import svg as chart_svg

    return chart_svg(chart)
