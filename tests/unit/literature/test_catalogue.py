"""The shipped catalogue: every seed-list paper present, valid, with dates and head types; canonical file form."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from headatlas.errors import CatalogueError
from headatlas.literature.catalogue import Catalogue, dump_json, dump_yaml, load_catalogue, loads, shipped_text
from headatlas.literature.identity import title_key as normalise_title
from headatlas.literature.schema import Paper, slugify

SEED_TITLES = Path(__file__).parent / "data" / "seed_list_titles.tsv"
SHIPPED = 74  # 66 papers of the seed text file + 8 the text file lost (see provenance notes)


def _seed_rows() -> list[tuple[str, str]]:
    rows = []
    for line in SEED_TITLES.read_text(encoding="utf-8").splitlines():
        day, title = line.split("\t")
        rows.append((day, title))
    return rows


def test_every_paper_of_the_seed_list_is_in_the_catalogue_with_its_date():
    catalogue = load_catalogue()
    by_title = {normalise_title(p.title): p for p in catalogue.papers}
    rows = _seed_rows()
    assert len(rows) == 66
    missing = [t for _, t in rows if normalise_title(t) not in by_title]
    assert missing == []
    for day, title in rows:
        assert by_title[normalise_title(title)].date.isoformat() == day, title


def test_shipped_catalogue_count_dates_head_types_and_summaries():
    catalogue = load_catalogue()
    assert len(catalogue) == SHIPPED
    assert len({p.id for p in catalogue.papers}) == SHIPPED
    for p in catalogue.papers:
        assert date(2016, 1, 1) <= p.date <= date(2024, 12, 31)
        assert p.head_types and p.tags
        assert p.stages
        assert p.summary.innovation and p.summary.tasks and p.summary.result
        assert p.provenance.source == "seed"
        assert p.links, p.id
    recovered = [p for p in catalogue.papers if "missing from the plain-text seed file" in p.provenance.note]
    assert len(recovered) == SHIPPED - 66
    assert min(p.date for p in catalogue.papers) == date(2016, 3, 21)


def test_ids_are_arxiv_ids_or_slugs_and_assigned_ids_are_marked():
    for p in load_catalogue().papers:
        if p.arxiv_id is None:
            assert p.id == slugify(p.title, p.year)
        elif "arxiv.org" not in p.links.get("paper", ""):
            # the list linked a venue, not arXiv: the arXiv id was assigned by the maintainers
            assert "id" in p.provenance.assigned, p.id


def test_reported_heads_of_the_ioi_paper():
    ioi = load_catalogue().get("2211.00593")
    heads = {(h.head, h.head_type) for h in ioi.reported_heads}
    assert ("L9H9", "name_mover") in heads
    assert ("L10H7", "negative_name_mover") in heads
    assert {h for h, t in heads if t == "s_inhibition"} == {"L7H3", "L7H9", "L8H6", "L8H10"}


def test_shipped_file_is_in_canonical_sorted_form():
    text = shipped_text()
    assert dump_yaml(loads(text)) == text
    dates = [p.date for p in loads(text)]
    assert dates == sorted(dates, reverse=True)


def test_json_and_yaml_round_trip_is_lossless():
    papers = list(load_catalogue().papers)
    assert loads(dump_json(papers)) == papers
    assert loads(dump_yaml(papers)) == papers


def _record(**changes):
    record = load_catalogue().get("2404.15574").to_dict()
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"date": "2024-13-01"}, "field 'date'"),
        ({"date": "2999-01-01"}, "in the future"),
        ({"title": ""}, "field 'title'"),
        ({"head_types": []}, "head_types"),
        ({"stages": ["XX"]}, "field 'stages'"),
        ({"methods": ["guessing"]}, "field 'methods'"),
        ({"links": {"paper": "ftp://x"}}, "link 'paper'"),
        ({"id": "Not An Id"}, "field 'id'"),
        ({"colour": "red"}, "unknown fields"),
    ],
)
def test_bad_records_name_the_field(changes, message):
    with pytest.raises(CatalogueError, match=message):
        Paper.from_dict(_record(**changes))


def test_catalogue_refuses_duplicate_ids_and_titles():
    p = load_catalogue().get("2404.15574")
    with pytest.raises(CatalogueError, match="duplicate paper id"):
        Catalogue((p, p))
    twin = Paper.from_dict(_record(id="2404.99999"))
    with pytest.raises(CatalogueError, match="same title"):
        Catalogue((p, twin))


def test_stages_follow_the_vocabulary_of_each_papers_head_types():
    from headatlas.literature.schema import STAGES
    from headatlas.literature.vocabulary import vocabulary

    vocab = vocabulary()
    for p in load_catalogue().papers:
        derived = tuple(s for s in STAGES if any(vocab.get(h).stage == s for h in p.head_types))
        assert p.stages == derived, p.id


def test_authors_where_known():
    ioi = load_catalogue().get("2211.00593")
    assert ioi.authors[0] == "Kevin Wang" and "authors" in ioi.provenance.assigned


def test_reported_heads_beyond_the_seed_name_their_primary_source() -> None:
    from headatlas.literature.catalogue import load_catalogue

    papers = [p for p in load_catalogue().papers if p.reported_heads]
    source = re.compile(r"source: github\.com/[\w.-]+/[\w.-]+ \S")  # repository and file path
    sourced = [p for p in papers if any(source.search(h.note) for h in p.reported_heads)]
    assert len(sourced) >= 12
    fv = load_catalogue().get("2310.15213").reported_heads
    assert {h.model for h in fv} == {"GPT-J-6B", "Llama-2-7B"} and len(fv) == 20
    assert all("github.com/ericwtodd/function_vectors" in h.note for h in fv)
    duo = load_catalogue().get("2410.10819").reported_heads
    assert duo and all("github.com/mit-han-lab/duo-attention" in h.note and h.score >= 0.999 for h in duo)

    arithmetic = load_catalogue().get("2410.21272").reported_heads
    assert len(arithmetic) == 22 and {h.model for h in arithmetic} == {"Meta-Llama-3-8B"}
    tracker = load_catalogue().get("2411.00348").reported_heads
    assert len({h.model for h in tracker}) == 6 and all("Attention-Tracker" in h.note for h in tracker)
    retrieval = load_catalogue().get("2404.15574").reported_heads
    assert len({h.model for h in retrieval}) == 7  # the authors' head_score files
    assert {h.head for h in retrieval if h.model == "Llama-2-7B-80K"} >= {"L16H19", "L11H15", "L8H26"}


def test_reported_heads_added_from_authors_repositories_carry_hub_ids_and_sources() -> None:
    catalogue = load_catalogue()
    added = {"1906.04341": "clarkkev/attention-analysis", "2405.14992": "corxyz/icl-cmr",
             "2405.04156": "jgcarrasco/acronyms_paper", "2311.04131": "apartresearch/seqcont_circuits",
             "2310.15154": "curt-tigges/eliciting-latent-sentiment",
             "2211.00593": "redwoodresearch/Easy-Transformer",
             "2310.04625": "callummcdougall/SERI-MATS-2023-Streamlit-pages"}  # fmt: skip
    for paper_id, repo in added.items():
        heads = catalogue.get(paper_id).reported_heads
        assert heads and all(f"source: github.com/{repo} " in h.note for h in heads), paper_id
    for paper_id in ("1906.04341", "2405.14992", "2405.04156", "2311.04131", "2310.15154"):
        assert all("/" in h.model for h in catalogue.get(paper_id).reported_heads), paper_id  # hub ids
    letters = catalogue.get("2405.04156").reported_heads
    assert {h.head for h in letters} == {"L8H11", "L9H9", "L10H10", "L11H4"}
    bert = {h.head: h for h in catalogue.get("1906.04341").reported_heads}
    assert "dobj 86.8" in bert["L7H9"].note and bert["L7H9"].score == 0.868  # the paper's 8-10, 0-indexed here
    cmr = [h for h in catalogue.get("2405.14992").reported_heads if h.model == "openai-community/gpt2"]
    assert len(cmr) == 14 and all(h.head_type == "cmr_like" for h in cmr)
