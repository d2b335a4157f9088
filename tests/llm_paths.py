"""The `llm_path` fixture: a test runs once on the OpenAI-compatible fast path and once
through litellm (`settings.fast_path`), so both paths pass the same assertions.

Import it into a test module (`from llm_paths import llm_path`) and use it with
`pytest.mark.usefixtures("llm_path")`; conftest's settings reset restores the setting.
"""

from __future__ import annotations

import pytest

from llmops_nb.config import settings


@pytest.fixture(params=["fast", "litellm"])
def llm_path(request: pytest.FixtureRequest) -> str:
    settings.fast_path = request.param == "fast"
    return str(request.param)
