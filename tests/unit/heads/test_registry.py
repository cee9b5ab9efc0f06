"""The head-type registry: explicit registration, refusals, entry points, and a plug-in type end to end."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json

import pytest

from headatlas.causal.metrics import METRICS
from headatlas.errors import InvalidSettingError
from headatlas.heads import get_head_type, head_types, load_entry_points, register_head_type, registry
from headatlas.literature.vocabulary import shipped_terms
from headatlas.probes import PROBES

PLUGIN = importlib.metadata.EntryPoint(
    name="two_back", value="example_head_type:HEAD_TYPE", group=registry.ENTRY_POINT_GROUP
)


@pytest.fixture()
def fresh_registry(monkeypatch):
    """The built-in registry, metrics and probes, restored after the test."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr("headatlas.causal.metrics.METRICS", dict(METRICS))
    monkeypatch.setattr("headatlas.probes.PROBES", dict(PROBES))


def test_stage_comes_from_the_vocabulary_entry():
    terms = {t.id: t for t in shipped_terms()}
    for head_type in head_types().values():
        assert head_type.stage == terms[head_type.id].stage
        assert head_type.vocabulary_entry() is terms[head_type.id]


def test_a_type_outside_the_vocabulary_is_refused_with_the_fix():
    induction = get_head_type("induction")
    with pytest.raises(InvalidSettingError, match=r"'three_back'.*head_types.yaml lacks; .* HeadTerm"):
        dataclasses.replace(induction, id="three_back")


def test_duplicates_are_refused_and_the_same_object_is_a_no_op(fresh_registry):
    induction = get_head_type("induction")
    assert register_head_type(induction) is induction
    clone = dataclasses.replace(induction, threshold=0.1)
    with pytest.raises(
        InvalidSettingError, match=r"'induction' is already registered \(by headatlas.heads.induction\)"
    ):
        register_head_type(clone)
    assert get_head_type("induction") is induction


def test_a_metric_or_probe_name_cannot_be_taken_by_another_type(fresh_registry):
    from example_head_type import HEAD_TYPE

    stolen_metric = dataclasses.replace(METRICS["text_loss"], description="not the text loss")
    with pytest.raises(InvalidSettingError, match="metric 'text_loss' is already registered"):
        register_head_type(dataclasses.replace(HEAD_TYPE, metric=stolen_metric))
    with pytest.raises(InvalidSettingError, match="probe 'natural_text' is already registered"):
        register_head_type(dataclasses.replace(HEAD_TYPE, probes={"natural_text": lambda tok, s, seed: []}))
    with pytest.raises(InvalidSettingError, match="valid metrics are"):
        register_head_type(dataclasses.replace(HEAD_TYPE, metric="no_such_metric"))
    assert "two_back" not in head_types()


def test_entry_points_add_types_and_name_the_culprit(fresh_registry):
    added = load_entry_points([PLUGIN])
    assert [t.id for t in added] == ["two_back"] and list(head_types())[-1] == "two_back"
    assert load_entry_points([PLUGIN]) == added  # loading twice is harmless (the same object)
    clash = importlib.metadata.EntryPoint(name="bad", value="headatlas.heads.sink:HEAD_TYPE", group=PLUGIN.group)
    other = dataclasses.replace(get_head_type("sink"), threshold=0.9)
    registry._REGISTRY["sink"] = other  # as if a plug-in had claimed the id first
    with pytest.raises(
        InvalidSettingError, match=r"entry point bad \(headatlas.heads.sink:HEAD_TYPE\): head type 'sink'"
    ):
        load_entry_points([clash])
    junk = importlib.metadata.EntryPoint(name="junk", value="headatlas.heads.sink:score", group=PLUGIN.group)
    with pytest.raises(InvalidSettingError, match="not a HeadType"):
        load_entry_points([junk])


def test_a_plug_in_type_is_scanned_verified_published_and_listed(fresh_registry, tmp_path, capsys):
    from headatlas.cli import main
    from headatlas.pipeline import run_scan, scan_settings
    from headatlas.probes import ProbeSettings
    from headatlas.publish import publish
    from headatlas.testing.planted import build_planted_model

    load_entry_points([PLUGIN])
    small = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=24)
    settings = scan_settings(0, ["previous_token", "two_back"], small)
    loaded = build_planted_model()
    result = run_scan(loaded, settings, verify=True)
    rows = [r for r in result.headmap.rows if r["head_type"] == "two_back"]
    assert len(rows) == loaded.facts.n_layers * loaded.facts.n_heads and all(r["score"] is not None for r in rows)
    assert result.headmap.head_types["two_back"]["stage"] == "ICI"
    assert result.verification["two_back"]["metric"] == "text_loss"
    published = publish(result, tmp_path)
    written = json.loads(published.json.read_text())
    assert "two_back" in written["head_types"] and "two_back" in published.report.read_text()
    assert main(["heads", "list", "--format", "json"]) == 0
    assert "two_back" in [h["id"] for h in json.loads(capsys.readouterr().out)]
