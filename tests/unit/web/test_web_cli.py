"""``headatlas scan`` writes patterns.json and report.html next to the head map (model loading stubbed)."""

from __future__ import annotations

import json

from headatlas.cli import main
from headatlas.store import connect, list_scans


def test_scan_writes_patterns_and_report(monkeypatch, tmp_path, tiny_loaded, capsys):
    monkeypatch.setattr("headatlas.models.loader.load_model", lambda *a, **k: tiny_loaded)
    out, db = tmp_path / "out", tmp_path / "store.sqlite3"
    code = main(["scan", "x", "--out", str(out), "--db", str(db), "--types", "induction,previous_token",
                 "--needle-contexts", "256"])  # fmt: skip
    assert code == 0
    wrote = capsys.readouterr().err
    assert "patterns.json" in wrote and "report.html" in wrote  # the wrote line names every file
    patterns = json.loads((out / "patterns.json").read_text())
    assert len(patterns["examples"][0]["heads"]) == tiny_loaded.facts.n_head_total
    html = (out / "report.html").read_text()
    assert 'data-type="induction"' in html and 'id="pattern-data"' in html
    assert "In-context Learning and Induction Heads" in html  # a catalogue paper of the type
    (scan,) = list_scans(connect(db))
    assert scan["out_dir"] == str(out.resolve())
