"""publish: every file of a scan written atomically, and the scan stored."""

from __future__ import annotations

import pytest

from headatlas.capture import patterns_text
from headatlas.headmap import HeadMap
from headatlas.pipeline import run_scan, scan_settings
from headatlas.probes import ProbeSettings
from headatlas.publish import publish
from headatlas.store import connect, list_scans, load_scan
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=16)


@pytest.fixture(scope="module")
def result():
    return run_scan(build_planted_model(), scan_settings(0, ["previous_token", "induction"], SMALL))


def test_every_file_is_written_and_the_scan_stored(tmp_path, result):
    out = tmp_path / "scan"
    conn = connect(tmp_path / "store.sqlite3")
    published = publish(result, out, conn)
    assert sorted(p.name for p in out.iterdir()) == ["headmap.csv", "headmap.json", "patterns.json", "report.html"]
    assert published.csv.read_text() == result.headmap.csv_text()
    assert HeadMap.read(published.json).json_text() == result.headmap.json_text()
    assert published.patterns is not None and published.patterns.read_text() == patterns_text(result.patterns)
    report = published.report.read_text()
    assert "L1H2" in report and "headatlas.patterns/1" in report  # the stored patterns are in the report
    assert published.scan_id is not None and list_scans(conn)[0]["out_dir"] == str(out.resolve())
    assert load_scan(conn, published.scan_id).json_text() == result.headmap.json_text()


def test_same_result_same_bytes_and_no_store_no_id(tmp_path, result):
    first, second = publish(result, tmp_path / "a"), publish(result, tmp_path / "b")
    for name in ("csv", "json", "patterns", "report"):
        assert getattr(first, name).read_bytes() == getattr(second, name).read_bytes(), name
    assert first.scan_id is None


def test_a_scan_without_patterns_removes_stale_ones(tmp_path, result):
    publish(result, tmp_path)
    plain = run_scan(build_planted_model(), scan_settings(0, ["sink"], SMALL), patterns=False)
    published = publish(plain, tmp_path)
    assert published.patterns is None and not (tmp_path / "patterns.json").exists()
    assert "sink" in published.report.read_text()


def test_an_unwritable_out_dir_is_refused(tmp_path, result):
    from headatlas.errors import InvalidSettingError

    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(InvalidSettingError, match="is a file"):
        publish(result, blocker)
    assert blocker.read_text() == "keep"
