"""Rendering: PAPERS.md in sync with the data (drift check), stable output, BibTeX a parser accepts."""

from __future__ import annotations

import csv
import io
import random
import re
from pathlib import Path

import bibtexparser

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.render import md_escape, render_bibtex, render_csv, render_markdown, shields_text

REPO = Path(__file__).resolve().parents[3]


def test_shipped_papers_md_is_in_sync_with_the_data():
    """Regenerate with: headatlas papers export --format md --db <fresh store> --out PAPERS.md"""
    expected = render_markdown(list(load_catalogue().papers))
    assert (REPO / "PAPERS.md").read_text(encoding="utf-8") == expected


def test_markdown_is_stable_whatever_the_input_order():
    papers = list(load_catalogue().papers)
    first = render_markdown(papers)
    shuffled = papers[:]
    random.Random(1).shuffle(shuffled)
    assert render_markdown(shuffled) == first


def test_markdown_layout_follows_the_list():
    text = render_markdown(list(load_catalogue().papers))
    sections = re.findall(r"^### (Year \d{4})$|<summary><strong>(.+?)</strong></summary>", text, flags=re.M)
    names = [a or b for a, b in sections]
    assert names == ["Year 2024", "Year 2023", "Before ChatGPT Announced"]
    open_part, folded = text.split("<details>", 1)
    assert "| 2024-04-24 |" in open_part and "| 2023-02-02 |" not in open_part
    assert "| 2023-02-02 |" in folded and "| 2016-03-21 |" in folded
    assert text.count("| Date | Paper & Summary | Tags | Links |") == 3
    rows = [line for line in text.splitlines() if re.match(r"^\| \d{4}-\d{2}-\d{2} \|", line)]
    assert len(rows) == len(load_catalogue())
    dates = [line[2:12] for line in rows]
    assert dates == sorted(dates, reverse=True)
    ioi = next(line for line in rows if "Indirect Object Identification" in line)
    assert "![S-inhibition head](https://img.shields.io/badge/S--inhibition_head-blue)" in ioi
    assert "[![ICLR paper]" in ioi and "[![code]" in ioi
    for row in rows:  # four cells: pipes inside text are escaped
        assert len(re.findall(r"(?<!\\)\|", row)) == 5


def test_escaping():
    assert md_escape("a | b <i>x</i> *y*") == r"a \| b &lt;i&gt;x&lt;/i&gt; \*y\*"
    assert shields_text("S-inhibition head") == "S--inhibition_head"
    assert shields_text("Copy_Head") == "Copy__Head"


def test_bibtex_parses_with_bibtexparser():
    papers = list(load_catalogue().papers)
    library = bibtexparser.parse_string(render_bibtex(papers))
    assert library.failed_blocks == []
    assert len(library.entries) == len(papers)
    keys = {e.key for e in library.entries}
    assert len(keys) == len(papers)
    ioi = library.entries_dict["arxiv-2211.00593"]
    assert ioi.entry_type == "misc"
    assert ioi.fields_dict["eprint"].value == "2211.00593"
    assert "Indirect Object Identification" in ioi.fields_dict["title"].value
    framework = library.entries_dict["a-mathematical-framework-for-transformer-2021"]
    assert framework.fields_dict["year"].value == "2021"


def test_csv_has_one_row_per_paper():
    papers = list(load_catalogue().papers)
    rows = list(csv.DictReader(io.StringIO(render_csv(papers))))
    assert len(rows) == len(papers)
    assert rows[0]["id"] == papers[0].id
    assert {r["id"]: r for r in rows}["2404.15574"]["head_types"] == "retrieval"
