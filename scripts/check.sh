#!/usr/bin/env bash
# The project's test command (after `./scripts/install.sh --dev`): lint, type-check, the architecture contracts
# (import-linter, see pyproject.toml), then every test tier (slow SmolLM2 tier included).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/pytest ] || [ ! -x .venv/bin/lint-imports ]; then
  echo "check.sh: the test tools are missing; run ./scripts/install.sh --dev first" >&2
  exit 2
fi
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest "$@"
