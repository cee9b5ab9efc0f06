"""Reading stored patterns (capture itself: tests/unit/test_capture.py)."""

from __future__ import annotations

from headatlas.web.patterns import FILENAME, for_head, read_patterns


def test_read_patterns_ignores_missing_or_foreign_files(tmp_path):
    assert read_patterns(tmp_path) is None
    (tmp_path / FILENAME).write_text('{"format": "something-else", "examples": []}')
    assert read_patterns(tmp_path) is None
    (tmp_path / FILENAME).write_text("{not json")
    assert read_patterns(tmp_path) is None


def test_for_head_keeps_one_head(tiny_patterns):
    one = for_head(tiny_patterns, "L0H1")
    assert one is not None
    assert all(list(ex["heads"]) == ["L0H1"] for ex in one["examples"])
    assert for_head(tiny_patterns, "L99H0") is None
    assert for_head(None, "L0H0") is None
