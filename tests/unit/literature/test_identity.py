"""Paper identity: ids first, then a Unicode-aware title key that keeps every script's letters apart."""

from __future__ import annotations

import json

import pytest

from headatlas.errors import CatalogueError
from headatlas.literature.identity import arxiv_key, doi_key, identity_keys, openreview_key, title_key, title_slug
from headatlas.literature.store import list_papers
from headatlas.store import connect

# two different titles in each script: a key that drops a script's letters makes each pair (and all) collide
SCRIPTS = {
    "chinese": ("注意力头的因果分析", "语言模型中的检索头"),
    "arabic": ("رؤوس الانتباه في النماذج اللغوية", "تحليل سببي لرؤوس النسخ"),
    "hebrew": ("ראשי קשב במודלי שפה", "ניתוח סיבתי של ראשי העתקה"),
    "cyrillic": ("Механизм внимания в трансформерах", "Индукционные головы и обучение в контексте"),
    "greek": ("Κεφαλές προσοχής σε γλωσσικά μοντέλα", "Αιτιακή ανάλυση κεφαλών αντιγραφής"),
    "devanagari": ("भाषा मॉडल में ध्यान शीर्ष", "प्रेरण शीर्ष का कारण विश्लेषण"),
    "japanese": ("注意ヘッドの役割", "帰納ヘッドと文脈内学習"),
    "korean": ("언어 모델의 어텐션 헤드", "귀납 헤드와 문맥 내 학습"),
}


def test_titles_in_every_script_keep_distinct_non_empty_keys() -> None:
    titles = [t for pair in SCRIPTS.values() for t in pair]
    keys = [title_key(t) for t in titles]
    assert all(keys) and len(set(keys)) == len(titles)
    slugs = {title_slug(t, 2024) for t in titles}
    assert len(slugs) == len(titles)  # ids built from the titles stay apart too


def test_title_key_folds_spelling_but_not_meaning() -> None:
    assert title_key("What does BERT look at? An Analysis of BERT’s Attention") == title_key(
        "What Does BERT Look At?  An analysis of BERT's attention"
    )
    assert title_key("Über Köpfe") == title_key("Uber Kopfe")  # Latin accents fold
    assert title_key("Pre-training heads") == title_key("Pretraining Heads")
    assert title_key("ﾃｽﾄ") == title_key("テスト")  # NFKC: half-width katakana
    assert title_key("STRASSE") == title_key("straße")  # casefold, not lower
    assert title_key("Йод") != title_key("Иод")  # a Cyrillic letter with a breve is another letter
    assert title_key("नमस्ते") != title_key("नमस्त")  # Devanagari vowel signs are kept


def test_a_title_without_letters_keys_on_its_text_and_never_merges_with_another() -> None:
    assert title_key("∑ → ∏") == "#∑ → ∏"
    assert title_key("∑  →  ∏") == title_key("∑ → ∏")
    assert title_key("∑ → ∏") != title_key("∏ → ∑") != title_key("???")
    assert title_key("???") != title_key("!!!")
    assert not title_key("???").startswith(tuple("abc"))  # a letter key never starts with '#'
    with pytest.raises(CatalogueError):
        title_key("   ")


def test_ascii_slugs_are_unchanged_and_others_get_a_hash() -> None:
    assert title_slug("Attention Is All You Need", 2017) == "attention-is-all-you-need-2017"
    slug = title_slug("注意力头的因果分析", 2024)
    assert slug.endswith("-2024") and len(slug) == len("0123abcd-2024")
    assert title_slug("BERT 的注意力", 2024) != title_slug("BERT 的记忆", 2024)  # same ASCII word, other letters


def test_a_slug_without_a_year_is_the_title_part_alone() -> None:
    assert title_slug("In-context Learning and Induction Heads") == "in-context-learning-and-induction"
    assert len(title_slug("注意力头的因果分析")) == 8  # the hash alone, never empty


def test_id_keys_from_ids_and_urls() -> None:
    assert arxiv_key("https://arxiv.org/abs/2404.15574v2") == "2404.15574"
    assert arxiv_key("arXiv:hep-th/9901001v3") == "hep-th/9901001"
    assert arxiv_key("https://example.org/vol/1234.56789") is None  # not an arXiv URL
    assert doi_key("https://doi.org/10.18653/v1/P19-1580") == "10.18653/v1/p19-1580"
    assert openreview_key("https://openreview.net/forum?id=NpsVSN6o4ul") == "NpsVSN6o4ul"
    assert openreview_key("https://openreview.net/pdf?foo=1&id=abc-9") == "abc-9"
    keys = identity_keys("2404.15574", "https://arxiv.org/pdf/2404.15574v1", "https://doi.org/10.5555/X")
    assert keys == ["arxiv:2404.15574", "doi:10.5555/x"]


FORM = """Title: {title}
Head: Retrieval Head
Published: arXiv
Date: 2025-03-04
{link}Summary:
- Innovation: Scores every head.
- Tasks: Needle retrieval.
- Significant Result: Five heads carry most of the retrieval.
"""


def test_contribution_forms_with_chinese_then_cyrillic_titles_are_two_papers(seeded_db, cli, tmp_path) -> None:
    before = len(list_papers(connect(seeded_db)))
    form = tmp_path / "form.txt"
    added = []
    for title in (SCRIPTS["chinese"][0], SCRIPTS["cyrillic"][0], SCRIPTS["arabic"][0], SCRIPTS["hebrew"][0]):
        form.write_text(FORM.format(title=title, link=""), encoding="utf-8")
        code, out, err = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
        assert code == 0, err
        assert out.startswith("added "), out
        added.append(out.split()[1])
    assert len(set(added)) == 4
    papers = list_papers(connect(seeded_db))
    assert len(papers) == before + 4
    assert {SCRIPTS["chinese"][0], SCRIPTS["cyrillic"][0]} <= {p.title for p in papers}
    # the same Chinese title again (another spacing) is a merge, reported with both titles
    form.write_text(FORM.format(title=" " + SCRIPTS["chinese"][0] + " ", link=""), encoding="utf-8")
    code, out, _ = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 0 and out.startswith(f"merged into {added[0]} ") and out.count(SCRIPTS["chinese"][0]) == 2
    assert len(list_papers(connect(seeded_db))) == before + 4


def test_a_shared_doi_merges_before_the_title(seeded_db, cli, tmp_path) -> None:
    form = tmp_path / "form.txt"
    form.write_text(FORM.format(title="Heads, take one", link="Link: https://doi.org/10.5555/heads.1\n"))
    code, out, _ = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 0 and out.startswith("added ")
    form.write_text(FORM.format(title="Heads: the venue version", link="Link: https://doi.org/10.5555/HEADS.1\n"))
    code, out, _ = cli("papers", "add", "--from-issue", form, "--db", seeded_db)
    assert code == 0 and "(doi:10.5555/heads.1)" in out and "'Heads, take one'" in out, out


def test_an_old_store_is_re_keyed_without_losing_a_paper(tmp_path) -> None:
    """A store written by the a-z0-9 key is migrated: its keys become Unicode-aware, no row lost."""
    import sqlite3

    from headatlas.store.db import migrate

    path = tmp_path / "old.sqlite3"
    conn = connect(path)
    from headatlas.literature.store import ensure_seeded

    ensure_seeded(conn)
    n = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
    conn.execute("DROP TABLE paper_keys")
    conn.execute("DELETE FROM migrations WHERE component = 'papers' AND name = '0003_identity'")
    conn.execute("UPDATE papers SET norm_title = 'old' || rowid")
    conn.commit()
    assert migrate(conn) == ["papers/0003_identity"]
    row = conn.execute("SELECT COUNT(*), COUNT(DISTINCT norm_title) FROM papers").fetchone()
    assert tuple(row) == (n, n)
    assert conn.execute("SELECT COUNT(*) FROM paper_keys WHERE key LIKE 'arxiv:%'").fetchone()[0] > 0
    assert isinstance(conn, sqlite3.Connection)
    assert json.loads(conn.execute("SELECT record_json FROM papers LIMIT 1").fetchone()[0])["title"]
