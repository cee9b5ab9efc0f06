"""The kv section of report.html: rendered from the scan directory's stored bench record and plot only."""

from __future__ import annotations

import base64
import json

from headatlas.web.kv_section import BENCH_JSON, BENCH_PNG, read_bench, render_section
from headatlas.web.report import env, write_report

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def bench_record() -> dict:
    scores = {"needle_exact": 0.33, "needle_forced": 0.875, "prose_loss": 2.5, "kv_fraction_real": 0.5}
    return {
        "model": "tiny",
        "grid": {"contexts": [2048], "depths": [0.1, 0.5, 0.9], "needles": 3, "fractions": [0.5]},
        "results": {
            "2048": {
                "full": {**scores, "needle_forced": 0.917, "kv_fraction_real": 1.0},
                "atlas_razor_comp@0.5": scores,
                "streaming_llm@0.5": {**scores, "needle_forced": 0.25},
                "snapkv@0.5": {"error": "RuntimeError: <b>boom</b>"},
            }
        },
        "summary": {
            "2048": {
                "0.5": {
                    "rule": "atlas_retrieval",
                    "vs_full": 0.727,
                    "points_over_random": 15.0,
                    "best_in_hindsight": "atlas_razor_comp",
                    "best_in_hindsight_vs_full": 0.954,
                }
            }
        },
        "decode_tokens_per_s": {"2048": {"full": 4.0, "atlas_retrieval@0.5": 4.2}},
        "simulation_equal": {"2048": {"atlas_retrieval@0.5": True}},
    }


def test_no_record_no_section(tmp_path, tiny_headmap, tiny_patterns):
    assert render_section(tmp_path, env()) == ""
    html = write_report(tiny_headmap, tmp_path, patterns=tiny_patterns).read_text(encoding="utf-8")
    assert 'id="kv-cache"' not in html


def test_report_shows_the_stored_bench_and_plot(tmp_path, tiny_headmap, tiny_patterns):
    (tmp_path / BENCH_JSON).write_text(json.dumps(bench_record()))
    (tmp_path / BENCH_PNG).write_bytes(PNG)
    html = write_report(tiny_headmap, tmp_path, patterns=tiny_patterns).read_text(encoding="utf-8")
    section = html[html.index('id="kv-cache"') : html.index('id="settings"')]
    assert "atlas_razor_comp" in section and "0.875" in section and "0.917" in section
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in section
    assert "&lt;b&gt;boom&lt;/b&gt;" in section and "<b>boom" not in section  # escaped
    assert 'default rule <span class="mono">atlas_retrieval</span> (fixed before the run), 0.727 of full' in section
    assert '<span class="mono">atlas_razor_comp</span>, 0.954 (chosen after seeing them, so optimistic)' in section
    # rebuilt from the same files: the same bytes
    again = write_report(tiny_headmap, tmp_path, patterns=tiny_patterns).read_text(encoding="utf-8")
    assert again == html


def test_unreadable_record_is_no_section(tmp_path):
    (tmp_path / BENCH_JSON).write_text("{not json")
    assert read_bench(tmp_path) is None and render_section(tmp_path, env()) == ""
