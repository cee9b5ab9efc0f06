#!/usr/bin/env bash
# Create .venv and install headatlas: what a user needs to scan, nothing else.
#   ./scripts/install.sh         headatlas and its runtime dependencies
#   ./scripts/install.sh --dev   + the test tools (the "dev" extra) and Debian's chromium for the browser tests
# torch is pinned to the CPU build on purpose: an unpinned torch resolves to a multi-GB CUDA build. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (valid: --dev)" >&2; exit 2 ;;
  esac
done
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# constraints.txt holds the numerical stack steady: the published atlas reproduces (byte for byte on one processor)
if [ "$dev" -eq 1 ]; then
  .venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".[dev]"
else
  .venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e .
fi
[ "$dev" -eq 1 ] || exit 0
# the browser tests drive Debian's chromium through Playwright (never a downloaded browser)
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
