"""The atlas README table: one row per head type in survey-stage order, a status per model, and numbers
for every type that is not verified (best candidate, its score and its single-head ablation effect)."""

from __future__ import annotations

import re

from headatlas.api import scan
from headatlas.atlas import render_readme
from headatlas.causal import VerifySettings
from headatlas.literature.schema import STAGES
from headatlas.probes import ProbeSettings
from headatlas.testing.planted import PLANTED, build_planted_model
from headatlas.testing.tiny import tiny_llama

TYPES = ["induction", "previous_token", "sink", "name_mover", "successor", "safety"]


def test_readme_table_reports_every_type_with_its_status_and_numbers():
    loaded = tiny_llama("gqa")
    quick = VerifySettings(top_n=2, max_exact_members=2, max_batch=48)
    headmap = scan(loaded, head_types=TYPES, verify=True, verify_settings=quick)
    text = render_readme({"tiny": headmap})
    rows = {m.group(1): m.group(3) for m in re.finditer(r"^\| `(\w+)` \((\w+)\) \| (.*) \|$", text, re.M)}
    assert set(rows) == set(TYPES)
    stages = [headmap.head_types[t]["stage"] for t in rows]
    assert stages == sorted(stages, key=STAGES.index)  # knowledge recalling first, expression preparation last
    # a byte tokenizer has no single-token names: the IOI type says why instead of showing numbers
    assert rows["name_mover"].startswith("**not available**: IOI needs at least 4 names")
    for type_id, cell in rows.items():
        status = re.match(r"\*\*([a-z ]+)\*\*: ", cell)
        assert status and status.group(1) in {"verified", "not verified", "not found", "not available"}, cell
        if status.group(1) in ("not verified", "not found"):
            best = re.search(r"best (L\d+H\d+) \(score (-?[\d.]+), ablated alone (-?[\d.e+-]+)\)", cell)
            assert best, cell
            record = headmap.verification[type_id]
            effects = dict(zip(record["per_head"]["exact_heads"], record["per_head"]["exact_effects"], strict=True))
            assert f"{effects[best.group(1)]:.3g}" == best.group(3)
            assert best.group(1) == headmap.top(type_id, 1)[0]["name"]
    listed = dict(re.findall(r"^- `(\w+)` \(([\w, ]+)\): ", text, re.M))  # causal metric -> the types it checks
    for type_id in set(TYPES) - {"name_mover"}:
        assert type_id in listed[headmap.verification[type_id]["metric"]].split(", ")
    assert "name_mover" not in ", ".join(listed.values())
    assert rows["safety"].endswith("(a base model: the type is defined on instruct models, so this is a control)")
    assert "1 pattern members" not in text and f"| `tiny` ({headmap.facts.name}) | 2 x 4 (2) |" in text
    # each type across the models by depth, in the same stage order: members, best head, members' mean depth
    header = text.index("| across models | `tiny` |")
    table = text[header:].split("\n\n")[0].splitlines()[2:]
    assert [line.split(" | ")[0].lstrip("| ") for line in table] == [headmap.head_types[t]["name"] for t in rows]
    for line, type_id in zip(table, rows, strict=True):
        cell = line.split(" | ")[1].rstrip(" |")
        top = headmap.top(type_id, 1)
        if not top:
            assert cell == "no scores" and type_id == "name_mover"
            continue
        found = re.fullmatch(r"(\d+) members?; best (L\d+H\d+) (-?[\d.]+) at depth ([\d.]+)(.*)", cell)
        assert found, cell
        count, best, score, depth, rest = found.groups()
        assert int(count) == len(headmap.members(type_id)) and best == top[0]["name"]
        assert score == f"{top[0]['score']:.2f}" and float(depth) == top[0]["layer"] / (headmap.facts.n_layers - 1)
        assert ("members at mean depth" in rest) == bool(headmap.members(type_id))


def test_verified_cells_carry_the_interval_p_holm_p_and_stability():
    loaded = build_planted_model(0, spare_heads=94)  # 98 heads a layer: 97 alternatives to a one-head set
    settings = VerifySettings(repeat_len=12, n_repeat=4, top_n=2, max_batch=48, strict=True, n_random_max=60)
    headmap = scan(
        loaded,
        head_types=["induction", "previous_token"],
        probes=ProbeSettings(repeat_len=12, n_repeat=4, batch_size=4),
        verify=True,
        verify_settings=settings,
        stability_seeds=(0, 1, 2),
    )
    text = render_readme({"planted": headmap})
    for type_id in ("induction", "previous_token"):
        cell = re.search(rf"^\| `{type_id}` \(\w+\) \| (.*) \|$", text, re.M).group(1)
        planted = f"L{PLANTED[type_id][0][0]}H{PLANTED[type_id][0][1]}"
        assert cell.startswith(f"**verified**: {planted}; effect "), cell
        assert "(60 sets), p=0.016, Holm p=0.033; stable 1/1 over seeds 0,1,2 (Jaccard 1.00)" in cell, cell


def test_cells_say_when_the_test_used_every_random_set_and_a_wider_window():
    loaded = build_planted_model(0)  # 8 heads: 7 alternatives to the induction head in the whole model
    settings = VerifySettings(repeat_len=12, n_repeat=4, top_n=0, max_exact_members=1, max_batch=48)
    headmap = scan(
        loaded,
        head_types=["induction"],
        probes=ProbeSettings(repeat_len=12, n_repeat=4, batch_size=4),
        verify=True,
        verify_settings=settings,
    )
    cell = re.search(r"^\| `induction` \(\w+\) \| (.*) \|$", render_readme({"planted": headmap}), re.M).group(1)
    assert cell.startswith("**not verified**: 1 pattern member, best L1H2"), cell
    assert "(all 7 sets, layers ±1), p=0.125" in cell, cell
