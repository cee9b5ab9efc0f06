#!/usr/bin/env bash
# Create .venv and install headatlas with its test tools. torch is pinned to the CPU build on purpose:
# an unpinned torch resolves to a multi-GB CUDA build. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# constraints.txt holds the numerical stack steady so the published atlas reproduces byte for byte
.venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".[dev]"
# the browser tests drive Debian's chromium through Playwright (never a downloaded browser)
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
