"""Stability over seeds: planted heads are members under every seed; the overlap figures are computed right."""

from __future__ import annotations

import copy

import pytest

from headatlas.api import scan
from headatlas.errors import InvalidSettingError
from headatlas.headmap import HeadMap
from headatlas.probes import ProbeSettings
from headatlas.stability import stability
from headatlas.testing.planted import PLANTED, build_planted_model

PROBE = ProbeSettings(repeat_len=12, n_repeat=4, batch_size=4)


@pytest.fixture(scope="module")
def planted_scan():
    loaded = build_planted_model(0)
    return loaded, scan(loaded, head_types=["induction", "previous_token"], probes=PROBE, stability_seeds=(0, 1, 2))


def test_planted_heads_are_stable_under_every_seed(planted_scan):
    _, headmap = planted_scan
    for type_id in ("induction", "previous_token"):
        record = headmap.stability[type_id]
        planted = [f"L{layer}H{head}" for layer, head in PLANTED[type_id]]
        assert record["seeds"] == [0, 1, 2]
        assert record["jaccard"] == 1.0 and record["stable_members"] == planted
        assert record["rank_correlation"] > 0.5
        assert set(record["members_per_seed"]) == {"0", "1", "2"}
    assert headmap.settings["stability_seeds"] == [0, 1, 2]
    again = HeadMap.from_dict(headmap.to_dict())  # the record survives the file round trip
    assert again.stability == headmap.stability and again.json_text() == headmap.json_text()


def test_overlap_and_stable_members_from_member_sets_that_differ(planted_scan):
    _, headmap = planted_scan
    other = copy.deepcopy(headmap)
    for row in other.rows:  # the second seed also makes L0H0 an induction member
        if row["head_type"] == "induction" and (row["layer"], row["head"]) == (0, 0):
            row["member"] = True
    record = stability([headmap, other], [0, 7])["induction"]
    assert record["jaccard"] == 0.5  # {L1H2} vs {L0H0, L1H2}
    assert record["stable_members"] == ["L1H2"]
    assert record["members_per_seed"] == {"0": ["L1H2"], "7": ["L0H0", "L1H2"]}
    assert record["rank_correlation"] == 1.0  # the scores themselves did not move


def test_a_scan_without_seeds_has_no_stability_and_bad_seeds_fail_first(planted_scan):
    loaded, _ = planted_scan
    plain = scan(loaded, head_types=["induction"], probes=PROBE)
    assert plain.stability == {} and "stability" not in plain.to_dict()
    with pytest.raises(InvalidSettingError, match="other than the scan's"):
        scan(loaded, head_types=["induction"], probes=PROBE, stability_seeds=(0,))
    with pytest.raises(InvalidSettingError, match="non-negative"):
        scan(loaded, head_types=["induction"], probes=PROBE, stability_seeds=(0, -1))
