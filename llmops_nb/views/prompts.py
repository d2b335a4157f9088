"""The prompt version view: what the prompt panel, its static HTML and the report show.

The "previous version" is `prompting.previous_version` (the highest earlier one),
the same rule the sidebar's diff uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..llm.completion import Completion
    from ..prompting import PromptVersion

__all__ = ["header_model", "prompt_view", "response_view"]


def response_view(c: Completion) -> dict[str, Any]:
    """A traced completion as the panel shows it (model is the one actually called)."""
    return {
        "model": c.model,
        "text": c.text,
        "latency_ms": c.latency_ms,
        "input_tokens": c.usage.input_tokens,
        "output_tokens": c.usage.output_tokens,
        "cost": c.cost,
        "cached": c.cached,
        "trace_id": c.trace_id,
    }


def prompt_view(
    version: PromptVersion,
    status: str | None = None,
    messages: list[dict[str, str]] | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One prompt version as plain JSON-able data: header, template, history, diff,
    rendered messages and the model's response (when it was run)."""
    from ..errors import MissingVariable
    from ..prompting import aliases, previous_version, versions

    history = versions(version.name, project=version.project)
    previous = previous_version(version)
    if messages is None and version.sample:
        try:
            messages = version.render(version.sample)
        except MissingVariable:
            messages = None
    called = (response or {}).get("model")
    return {
        "name": version.name,
        "version": version.version,
        "hash": version.hash,
        "model": version.model,
        "called_model": called,
        "parameters": version.parameters,
        "description": version.description,
        "template": version.template,
        "variables": list(version.variables),
        "status": status,
        "project": version.project,
        "aliases": aliases(version.name, project=version.project),
        "history": [
            {
                "version": v.version,
                "hash": v.hash[:12],
                "author": v.author,
                "created": v.created_at.isoformat(timespec="seconds"),
                "message": v.message or "",
            }
            for v in reversed(history)
        ],
        "previous": previous.version if previous else None,
        "diff": version.diff(previous) if previous else "",
        "messages": messages or [],
        "response": response,
    }


def header_model(view: dict[str, Any]) -> str:
    """The model the header names: the one called, else the prompt's, else 'no model'."""
    return view.get("called_model") or view.get("model") or "no model"
