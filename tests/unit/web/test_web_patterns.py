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


def test_each_type_finds_its_evidence_and_the_selector_says_what_it_shows(tiny_patterns, tiny_headmap):
    from headatlas.web.patterns import example_of_type, panel_examples
    from headatlas.web.views import example_for_head

    ids = [ex["id"] for ex in tiny_patterns["examples"]]
    assert ids == ["natural_text", "repeated_tokens", "needle"]
    assert example_of_type(tiny_patterns, "retrieval", "L1H2") == 2
    assert example_of_type(tiny_patterns, "retrieval", "L0H0") is None  # not a retrieval member: not stored there
    assert example_of_type(tiny_patterns, "induction", "L0H0") == 1  # the shared examples hold every head
    assert example_for_head(tiny_patterns, "L1H2", ["retrieval", "induction"]) == 2
    assert example_for_head(tiny_patterns, "L1H2", ["induction", "retrieval"]) == 1
    names = {t: str(i["name"]) for t, i in tiny_headmap.head_types.items()}
    panel = panel_examples(tiny_patterns, names)
    needle = panel[2]
    assert needle["probe"] == "needle" and needle["types"] == ["Retrieval head"] and needle["n_tokens"] == 256
    assert needle["n_rows"] == len(tiny_patterns["examples"][2]["rows"]) and panel[0]["n_rows"] is None
    assert needle["note"].startswith("Evidence of Retrieval head: the probe its score or causal check reads.")
    assert "Retrieval head: 1 member, the strongest 1 shown." in needle["note"]
    assert "⋯ column sums the weight" in needle["note"] and "Keys in colour: needle value." in needle["note"]
    assert "⋯" not in panel[1]["note"] and "Induction head" in panel[1]["note"]


def test_for_head_keeps_only_the_examples_holding_the_head(tiny_patterns):
    assert [ex["id"] for ex in for_head(tiny_patterns, "L1H2")["examples"]] == [
        "natural_text",
        "repeated_tokens",
        "needle",
    ]
    assert [ex["id"] for ex in for_head(tiny_patterns, "L0H0")["examples"]] == ["natural_text", "repeated_tokens"]
