"""Shared fixtures: a scan of the planted-heads model written to disk, and synthetic headmaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from headatlas.probes import ProbeSettings

SMALL = ProbeSettings(
    repeat_len=20, n_repeat=4, text_len=64, n_text=4, needle_contexts=(256,), needle_per_context=1, batch_size=4
)


@pytest.fixture(scope="session")
def planted():
    from headatlas.testing.planted import build_planted_model

    return build_planted_model()


@pytest.fixture(scope="session")
def planted_scan(planted, tmp_path_factory) -> Path:
    """``headmap.json`` of a real scan (public API) of the planted model: induction L1H2, duplicate L0H2."""
    from headatlas.api import scan

    out = tmp_path_factory.mktemp("planted-scan")
    scan(planted, head_types=["induction", "duplicate_token", "retrieval"], probes=SMALL).write(out)
    return out
