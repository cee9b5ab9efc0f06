#!/usr/bin/env bash
# Create .venv and install headatlas with its test tools. torch is pinned to the CPU build on purpose:
# an unpinned torch resolves to a multi-GB CUDA build. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
