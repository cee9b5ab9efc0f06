"""Fixtures of the feed tests: the scripted local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .httpserver import ScriptedServer


@pytest.fixture()
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    try:
        yield s
    finally:
        s.close()
