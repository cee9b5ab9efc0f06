"""The head-type vocabulary: aliases, the census registry's ids, and head type -> papers."""

from __future__ import annotations

import pytest

from headatlas.errors import CatalogueError, UnknownHeadNameError
from headatlas.heads import head_types
from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.store import ensure_seeded, papers_for_head_type
from headatlas.literature.vocabulary import (
    HeadTerm,
    Vocabulary,
    display_tag,
    new_term,
    normalise_name,
    vocabulary,
)
from headatlas.store import connect

FUTURE_CENSUS_IDS = (
    "copying",
    "successor",
    "copy_suppression",
    "name_mover",
    "s_inhibition",
    "safety",
    "function_vector",
    "semantic_induction",
)


@pytest.mark.parametrize("name", ["S--Inhibition_Head", "S_Inhibition_Head", "S-inhibition head", "s inhibition heads"])
def test_spellings_of_s_inhibition_are_one_id(name):
    assert vocabulary().resolve(name) == "s_inhibition"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Previous_Head", "previous_token"),
        ("Previous_Token_Head", "previous_token"),
        ("In--Context_Head", "in_context"),
        ("BPE--merging_Head", "subword_merge"),
        ("Streaming_Head", "local"),
        ("Answer_Head", "correct"),
        ("retrieval heads", "retrieval"),
    ],
)
def test_list_tags_resolve(name, expected):
    assert vocabulary().resolve(name) == expected


def test_normalise_and_display():
    assert normalise_name("S--Inhibition_Head") == normalise_name("s-inhibition head") == "sinhibition"
    assert normalise_name("Head") == "head"  # a bare "head" is not emptied
    assert display_tag("S--Inhibition_Head") == "S-Inhibition Head"


def test_head_types_the_census_will_register_later_are_already_terms():
    vocab = vocabulary()
    for type_id in FUTURE_CENSUS_IDS:
        assert type_id in vocab


def test_every_survey_head_type_and_list_tag_has_a_term():
    vocab = vocabulary()
    survey = [
        "Associative Memories", "Memory Head", "Constant Head", "Single Letter Head", "Negative Head",
        "Previous Head", "Positional Head", "Rare Words Head", "Duplicate Head", "Retrieval Head",
        "Global Retrieval Head", "Subword Merge Head", "Syntactic Head", "Mover Head", "Name Mover Head",
        "Backup Name Mover Head", "Negative Name Mover Head", "Letter Mover Head", "Context Head",
        "Content Gatherer Head", "Sentiment Summarizer", "Semantic Induction Head", "Subject Head", "Relation Head",
        "Summary Reader", "Function Vector Head", "Induction Head", "In-context Head", "Truthfulness Head",
        "Accuracy Head", "Consistency Head", "Vulnerable Head", "Correct Letter Head", "Iteration Head",
        "Successor Head", "Inhibition Head", "Mixed Head", "Amplification Head", "Correct Head", "Coherence Head",
        "Faithfulness Head",
    ]  # fmt: skip
    assert [n for n in survey if vocab.find(n) is None] == []
    survey_ids = {vocab.resolve(n) for n in survey}
    assert all(vocab.get(i).in_survey for i in survey_ids)
    tags = {t for p in load_catalogue().papers for t in p.tags}
    assert len(tags) == 69
    assert [t for t in sorted(tags) if vocab.find(t) is None] == []


def test_defining_papers_exist_in_the_catalogue():
    ids = {p.id for p in load_catalogue().papers}
    for term in vocabulary().terms.values():
        assert term.papers, term.id
        assert set(term.papers) <= ids, term.id


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownHeadNameError, match=r"close matches: .*retrieval") as info:
        vocabulary().resolve("Retreival Head")
    assert "--new-head" in str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, CatalogueError)


def test_vocabulary_refuses_alias_clashes_and_duplicate_ids():
    vocab = vocabulary()
    with pytest.raises(CatalogueError, match="already means"):
        vocab.add(HeadTerm(id="my_head", name="My head", stage="LR", definition="d", aliases=("Induction_Head",)))
    with pytest.raises(CatalogueError, match="defined twice"):
        Vocabulary([vocab.get("induction"), vocab.get("induction")])
    with pytest.raises(CatalogueError, match="stage"):
        HeadTerm(id="x", name="X", stage="ZZ", definition="d")


def test_new_term_from_a_list_style_name():
    term = new_term("Gender_Bias_Head")
    assert term.id == "gender_bias"
    assert term.name == "Gender Bias Head"


@pytest.mark.parametrize("type_id", sorted(head_types()))
def test_registered_head_types_resolve_to_papers_in_catalogue_and_store(type_id, tmp_path):
    """A scan's head types link to catalogue entries: each registered id has papers, from either source."""
    from_catalogue = load_catalogue().papers_for_head_type(type_id)
    assert from_catalogue, type_id
    titles = {p.title for p in from_catalogue}
    # the registry's own defining-paper titles are among them
    assert set(head_types()[type_id].papers) & titles, type_id
    conn = connect(tmp_path / "s.sqlite3")
    ensure_seeded(conn)
    from_store = papers_for_head_type(conn, type_id)
    assert [p.id for p in from_store] == [p.id for p in from_catalogue]


def test_papers_for_head_type_includes_tagged_and_defining_papers():
    papers = load_catalogue().papers_for_head_type("induction")
    ids = [p.id for p in papers]
    assert "2209.11895" in ids  # defining (and tagged)
    assert "2407.07011" in ids  # tagged
    assert [p.date for p in papers] == sorted((p.date for p in papers), reverse=True)
    with pytest.raises(UnknownHeadNameError):
        load_catalogue().papers_for_head_type("no_such_head")
