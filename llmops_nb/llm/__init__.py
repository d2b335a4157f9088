"""Model calls: the only package that imports litellm (lazily, through `runtime`)."""

from __future__ import annotations

from .completion import Completion, Usage

__all__ = ["Completion", "Usage"]
