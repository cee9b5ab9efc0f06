from __future__ import annotations

import pytest

from headatlas.errors import InvalidSettingError
from headatlas.web import views


def test_score_color_runs_dark_to_bright_and_clamps():
    lo, mid, hi = views.score_color(0.0), views.score_color(0.5), views.score_color(1.0)
    assert lo == "#440154" and hi == "#fde725"
    assert len({lo, mid, hi}) == 3
    assert views.score_color(7.0) == hi and views.score_color(-1.0) == lo
    assert views.score_color(None) == views.MISSING_COLOR
    assert views.score_color(float("nan")) == views.MISSING_COLOR


@pytest.mark.parametrize("name, expected", [("L0H0", (0, 0)), ("L2H3", (2, 3))])
def test_parse_head(name, expected):
    assert views.parse_head(name, 3, 4) == expected


@pytest.mark.parametrize("name", ["L3H0", "L0H4", "l0h0", "L0H0/../x", "", "L-1H0"])
def test_parse_head_refuses_names_outside_the_model(name):
    with pytest.raises(InvalidSettingError):
        views.parse_head(name, 3, 4)


def test_strongest_type_is_the_member_type_furthest_past_its_threshold():
    rows = {
        "a": {"score": 0.5, "threshold": 0.1, "member": True},  # strength 0.44 (ratio 5x would win)
        "b": {"score": 0.9, "threshold": 0.6, "member": True},  # strength 0.75
        "c": {"score": 0.99, "threshold": 0.05, "member": False},  # strongest, but not a member
    }
    assert views.strongest_type(rows) == ("b", pytest.approx(0.75))
    none = {"a": {"score": 0.2, "threshold": 0.6, "member": False}}
    assert views.strongest_type(none) == (None, pytest.approx(-1.0))
    # a sink member that is also an induction member shows as induction
    both = {
        "sink": {"score": 0.99, "threshold": 0.6, "member": True},
        "induction": {"score": 0.5, "threshold": 0.4, "member": True},
    }
    assert views.strongest_type(both)[0] == "induction"
    assert views.strongest_type({"sink": both["sink"]})[0] == "sink"
    assert views.strength(0.4, 0.4) == 0 and views.strength(1.0, 0.4) == pytest.approx(1.0)


def test_heatmap_has_one_cell_per_head_with_links_and_members(tiny_headmap):
    grid = views.heatmap(tiny_headmap, "sink", link="/scans/1/heads/{name}")
    f = tiny_headmap.facts
    assert len(grid["cells"]) == f.n_layers * f.n_heads
    names = {c["name"] for c in grid["cells"]}
    assert names == {f"L{layer}H{h}" for layer in range(f.n_layers) for h in range(f.n_heads)}
    members = set(tiny_headmap.members("sink"))
    assert {c["name"] for c in grid["cells"] if c["member"]} == members
    assert all(c["href"] == f"/scans/1/heads/{c['name']}" for c in grid["cells"])
    # layers run across: x grows with layer, y with head
    c01 = next(c for c in grid["cells"] if c["name"] == "L0H1")
    c10 = next(c for c in grid["cells"] if c["name"] == "L1H0")
    assert c10["x"] > c01["x"] and c01["y"] > c10["y"]


def test_overview_colours_members_by_type_and_counts_them(tiny_headmap):
    grid = views.overview(tiny_headmap)
    colors = views.type_colors(list(tiny_headmap.head_types))
    for c in grid["cells"]:
        assert c["fill"] == (colors[c["type_id"]] if c["type_id"] else views.NO_TYPE_COLOR)
    counts = {t["type_id"]: t["count"] for t in grid["legend"]}
    assert sum(counts.values()) == sum(1 for c in grid["cells"] if c["type_id"])


def test_head_detail_ranks(tiny_headmap):
    detail = views.head_detail(tiny_headmap, 0, 0)
    assert detail["name"] == "L0H0"
    assert {s["head_type"] for s in detail["scores"]} == set(tiny_headmap.head_types)
    for s in detail["scores"]:
        if s["score"] is not None:
            assert 1 <= s["rank"] <= s["of"]
    best = tiny_headmap.top("sink", 1)[0]
    top = views.head_detail(tiny_headmap, best["layer"], best["head"])
    assert next(s for s in top["scores"] if s["head_type"] == "sink")["rank"] == 1


def test_pattern_example_is_the_one_leaning_least_on_bos():
    bos_heavy = [[1.0], [1.0, 0.0], [0.9, 0.05, 0.05]]
    spread = [[1.0], [0.2, 0.8], [0.1, 0.8, 0.1]]
    patterns = {"examples": [{"heads": {"L0H0": bos_heavy}}, {"heads": {"L0H0": spread}}]}
    assert views.example_for_head(patterns, "L0H0") == 1
    patterns["examples"].reverse()
    assert views.example_for_head(patterns, "L0H0") == 0
    assert views.example_for_head(None, "L0H0") == 0
    assert views.example_for_head(patterns, "L9H9") == 0


def _lab(hex_color: str) -> tuple[float, float, float]:
    """sRGB -> CIELAB (D65), for colour distances."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(int(hex_color[i : i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_every_registered_head_type_has_its_own_distinct_colour():
    import itertools
    import math

    from headatlas.heads import head_types

    ids = list(head_types())
    colors = views.type_colors(ids)
    assert len(set(colors.values())) == len(ids) >= 17
    labs = {t: _lab(c) for t, c in colors.items()}
    closest = min(math.dist(labs[a], labs[b]) for a, b in itertools.combinations(ids, 2))
    assert closest > 20, closest  # CIE76: clearly different side by side
    assert all(math.dist(lab, _lab(views.NO_TYPE_COLOR)) > 20 for lab in labs.values())
    # a type keeps its colour whatever else a scan holds; unknown types get colours no known type uses
    assert views.type_colors(["sink"])["sink"] == colors["sink"]
    extra = views.type_colors(["induction", "new_kind", "other_kind"])
    assert extra["induction"] == colors["induction"]
    assert extra["new_kind"] != extra["other_kind"]
    assert all(math.dist(_lab(extra[t]), labs[k]) > 5 for t in ("new_kind", "other_kind") for k in ids)


def test_numbers_never_show_negative_zero():
    assert views.fmt_num(-0.0001) == "0.000"
    assert views.fmt_num(-0.0) == "0.000"
    assert views.fmt_num(-0.004, 2) == "0.00"
    assert views.fmt_num(-0.0051, 2) == "-0.01"
    assert views.fmt_num(0.5) == "0.500" and views.fmt_num(None) == "–" and views.fmt_num("x") == "–"
    assert views._fmt(-0.00004) == "0.000"


def test_scored_on_names_what_each_type_is_computed_from():
    from headatlas.heads import head_types

    for t in head_types().values():
        text = views.scored_on(t.id, t.probe)
        assert "None" not in text and text, t.id
    assert views.scored_on("induction", "repeated_tokens") == "the repeated_tokens probe"
    assert views.scored_on("copying", None) == "the weights alone (no prompts)"
    assert "IOI" in views.scored_on("name_mover", None)
    assert views.scored_on("copy_suppression", "natural_text", {"kind": "weights+probe"}).startswith("the weights")
    assert views.scored_on("brand_new", None, {"probe": "ioi"}) == "its own task set (ioi)"


def test_top_heads_lists_every_member_and_at_least_k(tiny_headmap):
    from headatlas.bench.web import synthetic_headmap

    hm = synthetic_headmap()
    for t in hm.head_types:
        top = views.top_heads(hm, 5)[t]
        members = hm.members(t)
        assert len(top) == max(5, len(members)), t
        assert {r["name"] for r in top if r["member"]} == set(members)
    assert any(len(hm.members(t)) > 5 for t in hm.head_types)  # the case the old cut-off at 5 got wrong
    assert list(views.top_heads(hm, 5, ["induction"])) == ["induction"]


def test_overview_tooltip_lists_every_membership_and_legend_counts_both(tiny_headmap):
    grid = views.overview(tiny_headmap)
    names = {t: i["name"] for t, i in tiny_headmap.head_types.items()}
    multi = [c for c in grid["cells"] if len(c["members"]) > 1]
    assert multi, "the planted model has heads in several types"
    for c in multi:
        for t in c["members"]:
            assert names[t] in c["title"], (c["name"], t)
    for entry in grid["legend"]:
        assert entry["members"] == len(tiny_headmap.members(entry["type_id"]))
        assert entry["count"] <= entry["members"]
    assert sum(e["count"] for e in grid["legend"]) == sum(1 for c in grid["cells"] if c["type_id"])


def test_verification_rows_count_random_sets_only_where_the_set_test_ran():
    from pathlib import Path

    from headatlas.headmap import HeadMap

    headmap = HeadMap.read(Path(__file__).resolve().parents[3] / "atlas" / "gemma3-270m")
    rows = {r["head_type"]: r for r in views.verification_rows(headmap)}
    assert rows["copy_suppression"]["n_random"] is None  # no members: nothing was compared
    assert rows["induction"]["n_random"] == 400 and rows["induction"]["layer_window"] == 1  # the strict test
    assert rows["induction"]["all_random_sets"] is False  # 400 of the 495 sets in layers ±1
    assert rows["induction"]["screen"]["n_random"] == 20  # the screen it replaced
    assert rows["current_token"]["n_random"] == 150  # stopped early: 10 random sets did as much damage


def test_verification_rows_carry_the_screen_a_strict_test_replaced():
    from pathlib import Path

    from headatlas.headmap import HeadMap

    headmap = HeadMap.read(Path(__file__).resolve().parents[3] / "atlas" / "smollm2-135m")  # `atlas strict` ran
    rows = {r["head_type"]: r for r in views.verification_rows(headmap)}
    tested = {t for t, r in headmap.verification.items() if "p_value" in r}
    assert tested and all(rows[t]["p_holm"] is not None and rows[t]["n_tests"] == len(tested) for t in tested)
    for type_id in tested:
        screen = headmap.verification[type_id]["screen"]
        assert rows[type_id]["screen"] == {"verified": screen["verified"], "p_value": screen["p_value"], "n_random": 20}
        assert "screen" not in dict(rows[type_id]["other"])
    assert rows["successor"]["screen"] is None  # no members: no set test, strict or screening
