"""The kv section of a scan's ``report.html``: the head-aware KV-cache benchmark of the policies planned from
this scan (``python -m headatlas.bench kv --publish`` stores ``kv-bench.json`` and ``kv-bench.png`` in the
scan directory). Rendered from those two files only, so rebuilding the report gives the same bytes; the plot
is inlined as a ``data:`` image (the report's CSP allows no other source).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jinja2

BENCH_JSON = "kv-bench.json"
BENCH_PNG = "kv-bench.png"
ANCHOR = '<section id="settings">'
COLUMNS = ("needle_forced", "needle_exact", "prose_loss", "kv_fraction_real")


def read_bench(scan_dir: Path) -> dict[str, Any] | None:
    """The stored bench record, or None when the scan has none (or an unreadable one)."""
    path = Path(scan_dir) / BENCH_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("results"), dict) else None


def section_context(record: dict[str, Any], png: bytes | None) -> dict[str, Any]:
    """Rows per context length: the full cache, then each method at each fraction (fractions descending)."""
    lengths = []
    for length, results in record["results"].items():
        rows = [{"method": "full cache", "fraction": 1.0, **results.get("full", {})}]
        keyed = [(k.split("@")[0], float(k.split("@")[1]), v) for k, v in results.items() if "@" in k]
        for method, fraction, scores in sorted(keyed, key=lambda t: (-t[1], t[0])):
            rows.append({"method": method, "fraction": fraction, **scores})
        lengths.append(
            {
                "length": length,
                "rows": rows,
                "summary": record.get("summary", {}).get(length, {}),
                "decode": record.get("decode_tokens_per_s", {}).get(length, {}),
                "simulation_equal": record.get("simulation_equal", {}).get(length, {}),
            }
        )
    return {
        "model": record.get("model"),
        "grid": record.get("grid", {}),
        "lengths": lengths,
        "png": base64.b64encode(png).decode("ascii") if png else None,
    }


def render_section(scan_dir: Path, env: jinja2.Environment) -> str:
    """The section's HTML (``env``: the report's Jinja environment), or "" when the scan directory holds no
    bench record."""
    record = read_bench(scan_dir)
    if record is None:
        return ""
    png_path = Path(scan_dir) / BENCH_PNG
    png = png_path.read_bytes() if png_path.is_file() else None
    return env.get_template("_partials/kv_section.html").render(kv=section_context(record, png))


def with_kv_section(html: str, scan_dir: Path, env: jinja2.Environment) -> str:
    """``html`` (a rendered report) with the kv section placed before its settings section."""
    section = render_section(scan_dir, env)
    if not section or ANCHOR not in html:
        return html
    return html.replace(ANCHOR, section + "\n" + ANCHOR, 1)
