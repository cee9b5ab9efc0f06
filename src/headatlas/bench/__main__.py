"""``python -m headatlas.bench NAME [args]``: run one benchmark module's ``main(argv)``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "census": "headatlas.bench.census",
    "causal": "headatlas.bench.causal",
    "papers": "headatlas.bench.papers",
    "web": "headatlas.bench.web",
    "feed": "headatlas.bench.feed",
    "relevance": "headatlas.bench.relevance",
    "cli": "headatlas.bench.cli",
    "kv": "headatlas.bench.kv",
    "scale": "headatlas.bench.scale",
    "scan": "headatlas.bench.scan",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in BENCHMARKS:
        print(f"usage: python -m headatlas.bench {{{','.join(BENCHMARKS)}}} [args]", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[args[0]])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
