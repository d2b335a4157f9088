"""Charts that work offline and are safe to embed: altair -> SVG through vl-convert.

Altair's default renderer loads Vega from a CDN (nothing shows offline) and its HTML
renderers put the spec's JSON inside a <script>, so a stored label such as
`</script><script>...` would run. SVG has neither problem: labels are XML text. `svg`
also strips anything active (script, foreignObject, event handlers, javascript: links)
in case a spec asks for it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["CELL_HEIGHT", "CELL_WIDTH", "RENDERER", "svg", "use_offline_renderer"]

RENDERER = "llmops_nb_svg"
CELL_WIDTH = 64  # px per heatmap column: room for "1.00" at 12 px
CELL_HEIGHT = 28

_SVG_NS = "http://www.w3.org/2000/svg"
_ACTIVE_TAGS = {"script", "foreignObject", "iframe", "object", "embed"}
_JS_URL = re.compile(r"^\s*(javascript|data|vbscript):", re.IGNORECASE)


def svg(chart: Any) -> str:
    """The chart (an altair chart or a Vega-Lite dict) as sanitized inline SVG."""
    import vl_convert as vlc

    spec = chart.to_dict() if hasattr(chart, "to_dict") else chart
    return sanitize_svg(vlc.vegalite_to_svg(spec))


def sanitize_svg(text: str) -> str:
    """Drop script-capable elements and attributes from an SVG document."""
    ET.register_namespace("", _SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(text)
    for parent in root.iter():
        for child in list(parent):
            if _local(child.tag) in _ACTIVE_TAGS:
                parent.remove(child)
        for name in list(parent.attrib):
            local = _local(name).lower()
            if local.startswith("on") or (
                local == "href" and _JS_URL.match(parent.attrib[name] or "")
            ):
                del parent.attrib[name]
    return ET.tostring(root, encoding="unicode")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _render(spec: dict[str, Any], **_options: Any) -> dict[str, str]:
    return {"image/svg+xml": svg(spec), "text/plain": "<altair chart (SVG)>"}


def use_offline_renderer() -> None:
    """Show altair charts as SVG, unless the user already chose a renderer."""
    import altair as alt

    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, _render)
    if alt.renderers.active == "default":
        alt.renderers.enable(RENDERER)
