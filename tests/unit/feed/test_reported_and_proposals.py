"""Head mentions in text (each form and its false friends) and the proposed-type flow from ingest to accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headatlas.cli import app
from headatlas.errors import InvalidSettingError
from headatlas.literature.feed.proposals import accept_proposed, evidence_for
from headatlas.literature.feed.reported import extract_heads, extract_table_heads, mentions_in, mentions_in_table
from headatlas.store import connect


@pytest.mark.parametrize(
    ("sentence", "heads"),
    [
        ("The retrieval head L16H19 of the model", [(16, 19)]),
        ("heads L9H9 and L9.H6", [(9, 9), (9, 6)]),
        ("Name mover heads 9.9, 9.6 and 10.0 copy names", [(9, 9), (9, 6), (10, 0)]),
        ("Copy suppression head 10.7 suppresses", [(10, 7)]),
        ("ablating layer 10 head 7 and layer 11, head 10", [(10, 7), (11, 10)]),
        ("heads (10, 7) and (11, 10) write negatively", [(10, 7), (11, 10)]),
        ("head 7 of layer 10 and head 3 in layer 2", [(10, 7), (2, 3)]),
        ("retrieval heads 16.19 (0.94), 11.15 (0.92) and 8.26 (0.80)", [(16, 19), (11, 15), (8, 26)]),
        ("the L10 H7 head", [(10, 7)]),
    ],
)
def test_each_head_form(sentence: str, heads: list[tuple[int, int]]) -> None:
    assert mentions_in(sentence) == heads


@pytest.mark.parametrize(
    "sentence",
    [
        "As Section 3.2 shows, Llama 3.1 and Qwen2.5 improve",
        "Version v2.1 was released on 2024.10.14 with accuracy 0.85",
        "It ran for 2.5 hours on 8 GPUs (10, 7 days)",
        "We use 12 heads per layer and 32 layers",
        "HL9H9 is a product code",
        "Pruning heads 2.5x faster and heads 30% smaller",
        "Figure 10.7 and Table 3.2 show 12 heads",
        "heads in layer 10 were ablated on 2024.10.14",
    ],
)
def test_false_friends_are_not_heads(sentence: str) -> None:
    assert mentions_in(sentence) == []


def test_heads_listed_in_tables() -> None:
    roles = [["Name mover", "9.9, 9.6, 10.0"], ["Negative name mover", "10.7 (0.31), 11.10"]]
    assert mentions_in_table(["Role", "Heads"], roles) == [(9, 9), (9, 6), (10, 0), (10, 7), (11, 10)]
    assert mentions_in_table(["Layer", "Head", "Score"], [["16", "19", "0.94"], ["11", "15", "0.92"]]) == [
        (16, 19),
        (11, 15),
    ]
    assert mentions_in_table(["Head", "Retrieval score"], [["L16H19", "0.94"]]) == [(16, 19)]
    # false friends: a table without a heads column, and a column that measures heads
    assert mentions_in_table(["Section", "Title"], [["3.2", "Method"]]) == []
    assert mentions_in_table(["Head score", "Accuracy"], [["0.94", "10.7"]]) == []
    assert mentions_in_table(["Layer", "Head"], [["all", "mean"]]) == []
    found = extract_table_heads(
        "Table 2: name movers found in the model.", ["Model", "Heads"], [["GPT-2 small", "9.9"], ["Pythia", "4.3"]]
    )
    assert [(m.head, m.model, m.sentence) for m in found] == [
        ("L9H9", "GPT-2", "Table 2: name movers found in the model."),
        ("L4H3", "Pythia", "Table 2: name movers found in the model."),
    ]
    assert extract_table_heads("Heads of Llama-2-7B", ["Heads"], [["16.19"]])[0].model == "Llama"


def test_extracted_heads_name_their_model_and_sentence() -> None:
    found = extract_heads("Copy suppression", "We study head L10H7 in GPT-2 small. Pythia has head 4.3 too.")
    assert [(m.head, m.model) for m in found] == [("L10H7", "GPT-2"), ("L4H3", "Pythia")]
    assert found[0].sentence == "We study head L10H7 in GPT-2 small."
    assert found[1].layer_head == (4, 3)


DAILY = [
    {
        "paper": {
            "id": "2501.00001",
            "title": "Evaluator Heads in LLM Judges",
            "summary": "We find evaluator heads that score answers in Llama-2-7B judges. Ablating head L14H3 flips "
            "verdicts. Retrieval heads also matter.",
            "authors": [{"name": "A B"}],
            "publishedAt": "2025-01-02T00:00:00.000Z",
        },
        "publishedAt": "2025-01-02T00:00:00.000Z",
        "title": "Evaluator Heads in LLM Judges",
        "summary": "x",
    }
]


def test_proposed_type_flows_from_ingest_to_vocabulary(tmp_path: Path) -> None:
    data = tmp_path / "daily.json"
    data.write_text(json.dumps(DAILY))
    db = tmp_path / "s.db"
    runner = CliRunner()
    assert runner.invoke(app, ["feed", "update", "--file", str(data), "--db", str(db)]).exit_code == 0
    listed = runner.invoke(app, ["feed", "candidates", "--db", str(db)])
    assert listed.output.splitlines() == ["evaluator head\t1\t#1"]  # "ablating head L14H3" is no kind of head
    conn = connect(db)
    kinds = {(e.kind, e.name, e.detail) for e in evidence_for(conn, 1)}
    assert ("reported_head", "L14H3", "Llama") in kinds and ("head_type", "retrieval", "") in kinds
    assert ("proposed", "evaluator head", "") in kinds
    with pytest.raises(InvalidSettingError):
        accept_proposed(conn, "style head")  # nobody proposed it
    result = runner.invoke(app, ["heads", "accept-proposed", "evaluator head", "--stage", "LR", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("evaluator\t")
    row = conn.execute("SELECT head_types_json, candidates_json FROM feed_entries WHERE id = 1").fetchone()
    assert json.loads(row[0]) == ["retrieval", "evaluator"] and json.loads(row[1]) == []
    evidence = {(e.kind, e.name): e.sentence for e in evidence_for(conn, 1)}
    assert evidence[("head_type", "evaluator")] == "Evaluator Heads in LLM Judges"
    assert ("proposed", "evaluator head") not in evidence
    review = runner.invoke(app, ["papers", "review", "--db", str(db)], input="q\n")
    assert 'head type evaluator: "Evaluator Heads in LLM Judges"' in review.output
    assert "reported head (candidate) L14H3 (Llama)" in review.output
    accepted = runner.invoke(app, ["papers", "review", "--accept", "1", "--db", str(db)])
    assert accepted.exit_code == 0, accepted.output
    bad = runner.invoke(app, ["heads", "accept-proposed", "style head", "--db", str(db)])
    assert bad.exit_code != 0
