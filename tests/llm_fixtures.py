"""Pytest plugin: the OpenAI-compatible test server that litellm talks to over real HTTP.

`openai_server` is shared by the session (do not reconfigure it); `fresh_server` is a
new one per test, with default settings and zeroed counters, for tests that inject
latency or errors or count requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmops_nb.testing import OpenAIServer, serve


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIServer]:
    with serve() as server:
        yield server


@pytest.fixture
def fresh_server() -> Iterator[OpenAIServer]:
    with serve() as server:
        yield server
