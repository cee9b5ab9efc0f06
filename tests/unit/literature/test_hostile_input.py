"""Issue 19's table, catalogue half: hostile imports, forms and options give one-line errors and write nothing."""

from __future__ import annotations

import json

import pytest

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.store import get_paper
from headatlas.store import connect

DEEP = "[" * 100_000 + "]" * 100_000


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _paper(**changes: object) -> dict[str, object]:
    record = load_catalogue().papers[0].to_dict()
    record.update({"id": "2501.00001", "title": "A fresh paper about heads", **changes})
    return record


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DEEP, "nested too deeply"),
        ("- " * 50_000 + "x", "nested too deeply"),
        (json.dumps({"format": 1, "papers": [_paper(title="Heads \ud800")]}), "lone surrogate"),
        (json.dumps({"format": 1, "papers": [_paper(authors=5)]}), "field 'authors' must be a list"),
        (json.dumps({"format": 1, "papers": [_paper(date="2024-13-45")]}), "must be a date"),
    ],
)
def test_hostile_imports_are_one_line_and_write_nothing(seeded_db, cli, dump, tmp_path, text, message) -> None:
    before = dump(seeded_db)
    path = tmp_path / "import.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, _, err = cli("papers", "import", path, "--db", seeded_db)
    assert code == 2
    assert message in _one_line_error(err)
    assert dump(seeded_db) == before


def test_a_yaml_bare_datetime_is_read_as_its_day(seeded_db, cli, tmp_path) -> None:
    import yaml

    record = _paper(id="2501.00002", title="Heads at a bare datetime")
    doc = yaml.safe_dump([record], sort_keys=False).replace(f"date: '{record['date']}'", "date: 2024-05-01 10:30:00")
    assert "date: 2024-05-01 10:30:00" in doc
    path = tmp_path / "import.yaml"
    path.write_text(doc, encoding="utf-8")
    code, _, err = cli("papers", "import", path, "--db", seeded_db)
    assert code == 0, err
    assert get_paper(connect(seeded_db), "2501.00002").date.isoformat() == "2024-05-01"


@pytest.mark.parametrize(
    "args",
    [
        ["papers", "list", "--limit", "99999999999999999999"],
        ["papers", "list", "--year", "99999999999999999999"],
        ["papers", "list", "--limit", "0"],
        ["papers", "search", "heads", "--limit", "99999999999999999999"],
        ["papers", "search", "heads", "--year", "-99999999999999999999"],
    ],
)
def test_numbers_outside_sqlite_range_are_one_line_errors(seeded_db, cli, args) -> None:
    code, _, err = cli(*args, "--db", seeded_db)
    assert code == 2
    assert "must be an integer" in _one_line_error(err)


def test_a_surrogate_search_is_one_line(seeded_db, cli) -> None:
    code, _, err = cli("papers", "search", "heads \ud800", "--db", seeded_db)
    assert code == 2 and "lone surrogate" in _one_line_error(err)


def test_papers_export_never_writes_through_a_planted_symlink(seeded_db, cli, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "papers.md"
    (tmp_path / "papers.md.tmp").symlink_to(victim)
    code, _, _ = cli("papers", "export", "--out", out, "--db", seeded_db)
    assert code == 0 and victim.read_text() == "precious" and out.read_text().strip()
