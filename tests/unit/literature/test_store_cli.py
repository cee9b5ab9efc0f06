"""``headatlas papers …`` against a real SQLite store: search, filters, add, export/import, and bad input."""

from __future__ import annotations

import json

import pytest
import yaml

from headatlas.literature.catalogue import dump_json, load_catalogue, loads
from headatlas.literature.store import ensure_seeded, import_papers, list_papers, search_papers, store_vocabulary
from headatlas.store import connect

CONTRIBUTION = """Title: Sinks, Streams and Retrieval: A Study of Long-Context Heads
Head: Retrieval Head
Published: arXiv
Date: 2025-03-04
Link: https://arxiv.org/abs/2503.01234
Summary:
- Innovation: Scores every head of three models for long-context copying.
- Tasks: Needle retrieval and multi-document QA.
- Significant Result: Five heads carry most of the retrieval.
"""


def test_seeding_is_idempotent(seeded_db, dump):
    before = dump(seeded_db)
    conn = connect(seeded_db)
    assert ensure_seeded(conn) is False
    assert dump(seeded_db) == before
    assert len(list_papers(conn)) == len(load_catalogue())


def test_search_retrieval_head_finds_the_retrieval_head_paper_first(seeded_db, cli):
    code, out, _ = cli("papers", "search", "retrieval head", "--format", "json", "--db", seeded_db)
    assert code == 0
    ids = [p["id"] for p in json.loads(out)]
    assert ids[0] == "2404.15574"
    assert {"2407.15891", "2410.10819"} <= set(ids)


def test_search_is_ranked_and_filtered(seeded_db):
    conn = connect(seeded_db)
    hits = search_papers(conn, "induction heads")
    assert hits and all("induction" in (h.paper.title + h.paper.summary.text()).lower() for h in hits)
    assert hits[0].paper.id == "2209.11895"  # the defining paper of the head type the query names
    in_2023 = search_papers(conn, "induction", year=2023)
    assert {h.paper.year for h in in_2023} == {2023}
    ep = search_papers(conn, "answer", stage="EP")
    assert ep and all("EP" in h.paper.stages for h in ep)
    typed = search_papers(conn, "circuit", head_type="name_mover")
    assert typed and all("name_mover" in h.paper.head_types for h in typed)
    assert search_papers(conn, 'retrieval" OR "x') == []  # FTS syntax in the input is inert, not an error


def test_list_by_head_type_alias_stage_and_year(seeded_db, cli):
    code, out, _ = cli("papers", "list", "--head-type", "induction", "--format", "json", "--db", seeded_db)
    assert code == 0
    papers = json.loads(out)
    assert len(papers) == 17
    assert all("induction" in p["head_types"] for p in papers)
    code, out, _ = cli("papers", "list", "--head-type", "S-inhibition head", "--format", "csv", "--db", seeded_db)
    assert code == 0
    assert {"2211.00593", "2408.08590", "2411.16105"} <= {line.split(",")[0] for line in out.splitlines()[1:]}
    code, out, _ = cli("papers", "list", "--stage", "KR", "--year", "2024", "--format", "json", "--db", seeded_db)
    assert code == 0
    rows = json.loads(out)
    assert rows and all("KR" in p["stages"] and p["date"].startswith("2024") for p in rows)
    code, out, _ = cli("papers", "list", "--db", seeded_db)
    assert code == 0 and "74 papers" in out
    code, out, _ = cli("papers", "list", "--limit", "3", "--format", "json", "--db", seeded_db)
    assert [p["id"] for p in json.loads(out)] == ["2412.11459", "2412.07386", "2411.16105"]


def test_show(seeded_db, cli):
    code, out, _ = cli("papers", "show", "2211.00593", "--db", seeded_db)
    assert code == 0
    assert "Interpretability in the Wild" in out and "L9H9 name_mover" in out
    code, out, _ = cli("papers", "show", "2211.00593", "--format", "json", "--db", seeded_db)
    assert json.loads(out)["id"] == "2211.00593"


def test_add_from_template_shows_up_in_markdown_export(seeded_db, cli, tmp_path):
    form = tmp_path / "issue.txt"
    form.write_text(CONTRIBUTION)
    code, out, _ = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 0 and out.strip() == "added 2503.01234"
    code, out, _ = cli("papers", "export", "--format", "md", "--db", seeded_db)
    assert code == 0
    assert "### Year 2025" in out
    assert "Sinks, Streams and Retrieval: A Study of Long\\-Context Heads" in out or "Long-Context Heads" in out
    assert out.index("Year 2025") < out.index("Year 2024")


def test_duplicate_contribution_merges(seeded_db, cli, tmp_path, dump):
    form = tmp_path / "issue.txt"
    # same title as a seed paper, different spelling and a new head name: merged, not duplicated
    form.write_text(
        CONTRIBUTION.replace(
            "Sinks, Streams and Retrieval: A Study of Long-Context Heads",
            "retrieval head mechanistically explains long context factuality",
        )
        .replace("Link: https://arxiv.org/abs/2503.01234\n", "Code: https://example.org/code\n")
        .replace("Head: Retrieval Head", "Head: Retrieval Head, Induction_Head")
    )
    code, out, _ = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 0 and out.startswith("merged into 2404.15574 ")
    # both titles are in the report, so a wrong merge is visible
    assert "Retrieval Head Mechanistically Explains" in out and "(same title)" in out
    assert "'retrieval head mechanistically explains long context factuality'" in out
    conn = connect(seeded_db)
    assert len(list_papers(conn)) == 74
    merged = next(p for p in list_papers(conn) if p.id == "2404.15574")
    assert merged.head_types == ("retrieval", "induction")
    assert merged.links["code"] == "https://github.com/nightdessert/Retrieval_Head"  # stored link kept
    assert merged.summary.innovation.startswith("Discovers retrieval heads")  # stored text kept
    # by arXiv id, with a different title
    form.write_text(CONTRIBUTION.replace("Link: https://arxiv.org/abs/2503.01234", "Link: arXiv:2404.15574v1"))
    code, out, _ = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 0 and out.startswith("merged into 2404.15574 ") and "(same id)" in out
    assert "Sinks, Streams and Retrieval" in out
    assert len(list_papers(conn)) == 74


def test_new_head_is_added_to_the_store_vocabulary(seeded_db, cli, tmp_path):
    form = tmp_path / "issue.txt"
    form.write_text(CONTRIBUTION.replace("Head: Retrieval Head", "Head: Gender_Bias_Head"))
    code, _, err = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 2 and "unknown head name 'Gender_Bias_Head'" in err
    code, _, err = cli("papers", "add", "--from-issue", form, "--new-head", "--db", seeded_db)
    assert code == 0 and "gender_bias" in err
    code, out, _ = cli("papers", "list", "--head-type", "gender bias head", "--format", "json", "--db", seeded_db)
    assert [p["id"] for p in json.loads(out)] == ["2503.01234"]
    code, out, _ = cli("papers", "heads", "--format", "json", "--db", seeded_db)
    assert "gender_bias" in {t["id"] for t in json.loads(out)}


def test_export_import_round_trip_is_lossless(seeded_db, cli, tmp_path):
    form = tmp_path / "issue.txt"
    form.write_text(CONTRIBUTION.replace("Head: Retrieval Head", "Head: Retrieval Head, Gender_Bias_Head"))
    assert cli("papers", "add", "--from-issue", form, "--new-head", "--db", seeded_db)[0] == 0
    for fmt in ("json", "yaml"):
        exported = tmp_path / f"all.{fmt}"
        assert cli("papers", "export", "--format", fmt, "--out", exported, "--db", seeded_db)[0] == 0
        other = tmp_path / f"other-{fmt}.sqlite3"
        code, out, _ = cli("papers", "import", exported, "--db", other)
        assert code == 0 and out.strip() == "imported 75 papers"
        again = tmp_path / f"again.{fmt}"
        assert cli("papers", "export", "--format", fmt, "--out", again, "--db", other)[0] == 0
        assert again.read_text() == exported.read_text()
        assert len(loads(again.read_text())) == 75
        assert "gender_bias" in {t.id for t in store_vocabulary(connect(other)).terms.values()}


def _one_line_error(code: int, err: str) -> None:
    assert code == 2
    assert err.startswith("error: ")
    assert err.count("\n") == 1


BAD_IMPORTS = {
    "truncated.json": lambda good: good[: len(good) // 2],
    "invalid.yaml": lambda good: "- id: '1'\n  title: [unclosed\n",
    "empty.json": lambda good: "",
    "not-a-list.json": lambda good: json.dumps({"papers": {"id": "x"}}),
    "duplicate-ids.json": lambda good: json.dumps(
        {"format": 1, "papers": [json.loads(good)["papers"][0], json.loads(good)["papers"][0]]}
    ),
    "bad-date.json": lambda good: good.replace('"date": "2024-12-16"', '"date": "2024-12-32"', 1),
    "future-date.yaml": lambda good: yaml.safe_dump(
        [{**json.loads(good)["papers"][0], "id": "2999.00001", "title": "From the future", "date": "2999-01-01"}]
    ),
    "unknown-head.json": lambda good: good.replace('"head_types": [\n        "induction"', '"head_types": ["nope"', 1),
    "wrong-version.json": lambda good: good.replace('"format": 1', '"format": 99', 1),
    "conflicting-head-type.json": lambda good: good.replace(
        '"format": 1,',
        '"format": 1, "head_types": [{"id": "induction", "name": "Other", "stage": "KR", "definition": "x"}],',
        1,
    ),
    "alias-clash.json": lambda good: good.replace(
        '"format": 1,',
        '"format": 1, "head_types": [{"id": "mine", "name": "Induction head", "stage": "KR", "definition": "x"}],',
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_IMPORTS))
def test_bad_import_files_change_nothing(name, seeded_db, cli, dump, tmp_path):
    good = dump_json(list(load_catalogue().papers))
    # a valid first entry changed: if validation were per-entry, the rest would be written
    good = good.replace("Studies when an induction head copies", "CHANGED Studies when an induction head copies", 1)
    bad = tmp_path / name
    bad.write_text(BAD_IMPORTS[name](good))
    assert bad.read_text() != good
    before = dump(seeded_db)
    code, _, err = cli("papers", "import", bad, "--db", seeded_db)
    _one_line_error(code, err)
    assert dump(seeded_db) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("papers", "list", "--stage", "XYZ"), "unknown stage"),
        (("papers", "list", "--head-type", "retreival"), "close matches: retrieval"),
        (("papers", "list", "--format", "xml"), "unknown format"),
        (("papers", "search", "!!!"), "has no words"),
        (("papers", "search", "head", "--limit", "0"), "--limit"),
        (("papers", "list", "--limit", "0"), "--limit"),
        (("papers", "show", "2404.9999"), "no paper with id"),
        (("papers", "export", "--format", "pdf"), "unknown format"),
        (("papers", "import", "/nonexistent/file.json"), "cannot read"),
        (("papers", "add", "--from-issue", "/nonexistent/issue.txt"), "cannot read"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message, seeded_db, cli, dump):
    before = dump(seeded_db)
    code, _, err = cli(*args, "--db", seeded_db)
    _one_line_error(code, err)
    assert message in err
    assert dump(seeded_db) == before


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("Date: 2025-03-04", "Date: 2099-03-04", "in the future"),
        ("Date: 2025-03-04", "Date: yesterday", "must be a date"),
        ("Title: Sinks, Streams and Retrieval: A Study of Long-Context Heads\n", "", "field 'Title'"),
        ("Head: Retrieval Head", "Head: Retreival Head", "close matches"),
        ("- Tasks: Needle retrieval and multi-document QA.\n", "", "'Tasks'"),
    ],
)
def test_bad_contributions_change_nothing(old, new, message, seeded_db, cli, dump, tmp_path):
    form = tmp_path / "issue.txt"
    form.write_text(CONTRIBUTION.replace(old, new))
    before = dump(seeded_db)
    code, _, err = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    _one_line_error(code, err)
    assert message in err
    assert dump(seeded_db) == before


def test_import_into_store_with_a_title_clash_is_refused(seeded_db, dump):
    conn = connect(seeded_db)
    record = load_catalogue().get("2404.15574").to_dict()
    record["id"] = "2404.99999"
    before = dump(seeded_db)
    from headatlas.errors import CatalogueError
    from headatlas.literature.schema import Paper

    with pytest.raises(CatalogueError, match="same title as stored paper"):
        import_papers(conn, [Paper.from_dict(record)])
    assert dump(seeded_db) == before
