"""The jupyter_server extension behind the JupyterLab sidebar: JSON under /llmops-nb/api/.

Import-light on purpose: Jupyter imports this at startup; the store opens on the
first request.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "llmops_nb.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the API routes (called by jupyter_server when the extension is enabled)."""
    from .handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("llmops_nb: sidebar API at %sllmops-nb/api/", server_app.base_url)
