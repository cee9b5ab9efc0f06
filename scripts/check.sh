#!/usr/bin/env bash
# The project's test command: lint, type-check, then every test tier (slow SmolLM2 tier included).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/pytest "$@"
