"""Contribution forms: the list's plain-text template and the GitHub issue form, and their bad inputs."""

from __future__ import annotations

from datetime import date

import pytest

from headatlas.errors import CatalogueError, UnknownHeadNameError
from headatlas.literature.contrib import contribution_template, parse_contribution, parse_summary
from headatlas.literature.vocabulary import vocabulary

TODAY = date(2026, 11, 23)

PLAIN = """Title: Sinks, Streams and Retrieval: A Study of Long-Context Heads
Head: Retrieval Head, S--Inhibition_Head
Published: arXiv
Date: 2025-03-04
Link: https://arxiv.org/abs/2503.01234v2
Summary:
- Innovation: Scores every head of three models for long-context copying.
- Tasks: Needle retrieval and multi-document QA.
- Significant Result: Five heads carry most of the retrieval.
"""

ISSUE_FORM = """### Title

Sinks, Streams and Retrieval: A Study of Long-Context Heads

### Published_Date

2025-03-04

### Source

ICLR

### Head_Name

retrieval heads; Previous_Head

### Summary

- Innovation: Scores every head of three models for long-context copying.
- Tasks: Needle retrieval and multi-document QA.
- Significant Result: Five heads carry most of the retrieval.
"""


def parse(text: str, **kwargs):
    return parse_contribution(text, vocabulary(), today=TODAY, **kwargs)


def test_plain_template():
    c = parse(PLAIN)
    p = c.paper
    assert p.id == "2503.01234"  # version suffix dropped
    assert p.links["paper"] == "https://arxiv.org/abs/2503.01234"
    assert p.date == date(2025, 3, 4)
    assert p.venue == "arXiv"
    assert p.head_types == ("retrieval", "s_inhibition")
    assert p.tags == ("Retrieval Head", "S--Inhibition_Head")
    assert p.stages == ("ICI", "LR")
    assert p.summary.result == "Five heads carry most of the retrieval."
    assert p.provenance.source == "contribution" and p.provenance.added == TODAY
    assert c.new_terms == ()


def test_issue_form_markdown():
    p = parse(ISSUE_FORM).paper
    assert p.title == "Sinks, Streams and Retrieval: A Study of Long-Context Heads"
    assert p.venue == "ICLR"
    assert p.head_types == ("retrieval", "previous_token")
    assert p.id == "sinks-streams-and-retrieval-a-2025"  # no arXiv link: a slug


def test_date_inside_the_published_line():
    text = PLAIN.replace("Published: arXiv\nDate: 2025-03-04\n", "Published: arXiv, 2025-03-04\n")
    p = parse(text).paper
    assert p.date == date(2025, 3, 4) and p.venue == "arXiv"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("Title: Sinks, Streams and Retrieval: A Study of Long-Context Heads\n", "", "field 'Title'"),
        ("Date: 2025-03-04\n", "", "field 'Published Date'"),
        ("Date: 2025-03-04", "Date: 2027-01-01", "in the future"),
        ("Date: 2025-03-04", "Date: March 2025", "must be a date"),
        ("Published: arXiv\n", "Published:\n", "field 'Source'"),
        ("Head: Retrieval Head, S--Inhibition_Head\n", "", "field 'Head Name'"),
        ("- Tasks: Needle retrieval and multi-document QA.\n", "", "summary part 'Tasks'"),
        (
            "- Significant Result: Five heads carry most of the retrieval.",
            "- Significant Result:",
            "'Significant Result'",
        ),
        ("Link: https://arxiv.org/abs/2503.01234v2", "Link: somewhere", "field 'Link'"),
        ("Five heads", "Five heads " + "very " * 60, "limit is 60"),
    ],
)
def test_bad_plain_text_names_the_field(old, new, message):
    assert old in PLAIN
    with pytest.raises(CatalogueError, match=message):
        parse(PLAIN.replace(old, new))


def test_issue_form_no_response_is_missing():
    text = ISSUE_FORM.replace("ICLR\n", "_No response_\n")
    with pytest.raises(CatalogueError, match="field 'Source'"):
        parse(text)


def test_unfilled_template_is_refused():
    with pytest.raises(CatalogueError, match="template placeholder"):
        parse(contribution_template())


def test_unknown_head_lists_close_matches_unless_new_head():
    text = PLAIN.replace("S--Inhibition_Head", "Retreival Head").replace("Retrieval Head, ", "")
    with pytest.raises(UnknownHeadNameError, match="close matches: retrieval"):
        parse(text)
    text = PLAIN.replace("S--Inhibition_Head", "Gender_Bias_Head")
    c = parse(text, new_head=True)
    assert [t.id for t in c.new_terms] == ["gender_bias"]
    assert c.paper.head_types == ("retrieval", "gender_bias")


def test_summary_parts_may_run_together():
    s = parse_summary("- Innovation: A. - Tasks: B. - Significant Result: C.")
    assert (s.innovation, s.tasks, s.result) == ("A.", "B.", "C.")
