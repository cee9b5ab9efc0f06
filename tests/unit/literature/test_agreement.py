"""Papers ↔ scans on the planted model: reported heads written for the test, read against a real scan."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from headatlas.census import ScanSettings, run_census
from headatlas.cli import main
from headatlas.headmap import HeadMap
from headatlas.literature.agreement import agreement, render_text, same_checkpoint
from headatlas.literature.catalogue import dump_yaml, load_catalogue
from headatlas.literature.schema import ReportedHead
from headatlas.probes import ProbeSettings
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=16, needle_contexts=(256,), needle_per_context=1)
TYPES = ("previous_token", "induction", "duplicate_token")


@pytest.fixture(scope="module")
def planted_headmap() -> HeadMap:
    return run_census(build_planted_model(), ScanSettings(probes=SMALL, head_types=TYPES))


def _papers() -> list:
    """Two catalogue papers given reported heads of the planted checkpoint, one of another checkpoint."""
    catalogue = load_catalogue()
    a = dataclasses.replace(
        catalogue.get("2209.11895"),
        reported_heads=(
            ReportedHead("planted-llama", "L1H2", "induction", 0.9, "the planted induction head"),
            ReportedHead("planted-llama", "L0H0", "previous_token"),
            ReportedHead("planted-llama", "L1H3", "previous_token", note="a head the paper got wrong"),
            ReportedHead("planted-llama", "L1H1", "retrieval"),  # a type this scan did not score
        ),
    )
    b = dataclasses.replace(
        catalogue.get("2211.00593"),
        reported_heads=(
            ReportedHead("Planted-Llama", "L0H2", "duplicate_token"),  # case differs: same checkpoint
            ReportedHead("GPT-2 small", "L9H9", "name_mover"),  # another checkpoint: left out
        ),
    )
    return [a, b]


def test_agreement_per_type_on_the_planted_model(planted_headmap: HeadMap) -> None:
    result = agreement(planted_headmap, _papers())
    by_type = {t.head_type: t for t in result.types}
    assert set(by_type) == {"induction", "previous_token", "duplicate_token"}
    induction = by_type["induction"]
    assert [r.head for r in induction.found] == ["L1H2"] and induction.found[0].rank == 1
    assert induction.found[0].reported_score == 0.9 and induction.found[0].paper_id == "2209.11895"
    assert "L1H2" in induction.members and induction.unnamed == tuple(m for m in induction.members if m != "L1H2")
    previous = by_type["previous_token"]
    assert [r.head for r in previous.found] == ["L0H0"] and previous.found[0].rank == 1
    assert [r.head for r in previous.missed] == ["L1H3"] and previous.missed[0].rank > 1
    assert by_type["duplicate_token"].found[0].head == "L0H2"
    assert [r.head for r in result.unscored["retrieval"]] == ["L1H1"]
    assert result.papers == ("2209.11895", "2211.00593")
    assert all(r.model != "GPT-2 small" for t in result.types for r in t.reported)
    text = render_text(result)
    assert "induction: 1 of 1 reported heads are members here" in text
    assert "L1H3     not a member" in text and "retrieval: not scored in this scan; reported L1H1" in text


def test_checkpoint_names_meet_through_hub_ids() -> None:
    gpt2 = {"openai-community/gpt2"}
    assert same_checkpoint("GPT-2 small", gpt2) and same_checkpoint("gpt2-small", gpt2)
    assert not same_checkpoint("gpt2-medium", gpt2)
    assert same_checkpoint("Llama-2-7B-80K", {"yaofu/llama-2-7b-80k"})  # no organisation: repository names
    assert not same_checkpoint("other/llama-2-7b-80k", {"yaofu/llama-2-7b-80k"})


def test_compare_command_reads_a_scan_directory_and_a_papers_file(
    planted_headmap: HeadMap, tmp_path: Path, capsys
) -> None:
    scan_dir = tmp_path / "scan"
    planted_headmap.write(scan_dir)
    papers_file = tmp_path / "papers.yaml"
    papers_file.write_text(dump_yaml(_papers()), encoding="utf-8")
    assert main(["compare", str(scan_dir), "--papers", str(papers_file), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    induction = next(t for t in data["types"] if t["head_type"] == "induction")
    assert induction["n_found"] == 1 and induction["n_reported"] == 1 and induction["reported"][0]["rank"] == 1
    previous = next(t for t in data["types"] if t["head_type"] == "previous_token")
    assert previous["missed"] == ["L1H3"]
    assert main(["compare", str(scan_dir / "headmap.json"), "--papers", str(papers_file)]) == 0
    assert "previous_token: 1 of 2 reported heads are members here" in capsys.readouterr().out


def test_compare_refuses_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["compare", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "neither a stored scan id" in err
    (tmp_path / "headmap.json").write_text("{}", encoding="utf-8")
    assert main(["compare", str(tmp_path)]) == 2
    assert "is not a headatlas head map" in capsys.readouterr().err
