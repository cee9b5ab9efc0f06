"""What the report and the web app show, shaped once: heatmap grids, colour scales, the overview.

Both renderers (``report.py`` and ``app.py``) build their pages from these plain dicts, so the static
report and the server agree on every number and colour.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ..errors import InvalidSettingError
from ..headmap import HeadMap, head_name
from .patterns import example_of_type

# viridis, sampled at 9 stops: perceptually uniform and readable for colour-blind readers
_VIRIDIS = (
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
)
# categorical colours, one per head type: 17 hues picked from the Okabe-Ito, Tol and Kelly sets so that every
# pair differs by CIEDE2000 >= 15 in normal vision and >= 10 under simulated deuteranopia (Machado 2009); keyed
# by id, so a type keeps its colour in every scan, in the app and in report.html (and no torch import is needed
# to know it: the registry imports torch)
TYPE_COLORS = {
    "current_token": "#6699cc",
    "duplicate_token": "#44bb99",
    "induction": "#ee3377",
    "local": "#f6a600",
    "previous_token": "#0067a5",
    "retrieval": "#be0032",
    "sink": "#848482",  # grey: a resting behaviour
    "copying": "#008856",
    "negative_copying": "#2b3d26",
    "copy_suppression": "#654522",
    "successor": "#eedd88",
    "function_vector": "#332288",
    "name_mover": "#e25822",
    "negative_name_mover": "#f99379",
    "s_inhibition": "#aa3377",
    "safety": "#ffaabb",
    "semantic_induction": "#66ccee",
}
PALETTE = tuple(TYPE_COLORS.values())
STAGE_NAMES = {
    "KR": "knowledge recalling",
    "ICI": "in-context identification",
    "LR": "latent reasoning",
    "EP": "expression preparation",
}
"""The survey's four stages of how a model answers, which every head type is filed under."""
NO_TYPE_COLOR = "#eef0f3"
MISSING_COLOR = "#d9d9d9"
CELL = 18  # px of one heatmap cell
_HEAD_RE = re.compile(r"^L(\d{1,4})H(\d{1,4})$")


def score_color(value: float | None, vmax: float = 1.0) -> str:
    """Viridis colour of a score in ``[0, vmax]`` (clamped); grey when the score is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_COLOR
    x = min(max(value / vmax if vmax > 0 else 0.0, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    f = x - i
    lo, hi = _VIRIDIS[i], _VIRIDIS[i + 1]
    r, g, b = (round(a + (c - a) * f) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def colorbar_css() -> str:
    """A CSS gradient matching :func:`score_color` (for legends)."""
    stops = ", ".join(score_color(i / 8) for i in range(9))
    return f"linear-gradient(to right, {stops})"


def type_colors(type_ids: list[str] | None = None) -> dict[str, str]:
    """The colour of each head type: :data:`TYPE_COLORS` for the types headatlas knows, so a type has the same
    colour everywhere (web app, report.html, every scan); other types get evenly spaced hues in the order given.
    The one place colours are assigned."""
    if type_ids is None:
        return dict(TYPE_COLORS)
    extra = [t for t in type_ids if t not in TYPE_COLORS]
    return {t: TYPE_COLORS[t] if t in TYPE_COLORS else _hue(extra.index(t), len(extra)) for t in type_ids}


def _hue(i: int, n: int) -> str:
    import colorsys

    r, g, b = colorsys.hls_to_rgb((i / max(n, 1) + 0.07) % 1.0, 0.5, 0.6)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def parse_head(name: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    """``"L3H2" -> (3, 2)``; refuses names outside the model."""
    match = _HEAD_RE.match(name)
    if not match:
        raise InvalidSettingError(f"head names look like L3H2, got {name!r}")
    layer, head = int(match.group(1)), int(match.group(2))
    if layer >= n_layers or head >= n_heads:
        raise InvalidSettingError(f"{name} is outside this model ({n_layers} layers x {n_heads} heads)")
    return layer, head


def _fmt(value: Any, digits: int = 3) -> str:
    """A number as shown on pages: fixed digits, never ``-0.000`` (a tiny negative rounds to plain zero)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def fmt_num(value: Any, digits: int = 3) -> str:
    """Jinja's ``num``: ``–`` for a missing value or a non-number, else :func:`_fmt` with ``digits``."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return _fmt(float(value), digits)


def scores_by_head(headmap: HeadMap) -> dict[tuple[int, int], dict[str, dict[str, Any]]]:
    """``{(layer, head): {type_id: row}}``."""
    out: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for row in headmap.rows:
        out.setdefault((row["layer"], row["head"]), {})[row["head_type"]] = row
    return out


def strength(score: float, threshold: float) -> float:
    """How far a score is past its threshold, as a share of the headroom to a perfect 1.0.

    0 at the threshold, 1 at a perfect score, negative below; comparable across types whose thresholds
    differ (a 0.1-threshold type is not favoured the way a score / threshold ratio would favour it).
    """
    headroom = 1.0 - threshold
    return (score - threshold) / headroom if headroom > 1e-9 else score - threshold


BACKGROUND_TYPES = frozenset({"sink"})
"""Resting behaviours: a head that parks its attention on BOS when its own pattern is absent is also a sink
member (Xiao et al. 2023; Guo et al. 2024), so these only colour a head that is a member of nothing else."""


def strongest_type(rows: dict[str, dict[str, Any]]) -> tuple[str | None, float]:
    """The member type with the largest :func:`strength` (background types only when nothing else fits).

    ``(None, best strength)`` when the head is a member of no type.
    """
    ranked: list[tuple[bool, float, str]] = []
    best_any = -math.inf
    for type_id, row in rows.items():
        if row.get("score") is None or row.get("threshold") is None:
            continue
        value = strength(float(row["score"]), float(row["threshold"]))
        best_any = max(best_any, value)
        if row.get("member"):
            ranked.append((type_id not in BACKGROUND_TYPES, value, type_id))
    if ranked:
        _, value, type_id = max(ranked)
        return type_id, value
    return None, best_any if best_any > -math.inf else 0.0


def _grid(headmap: HeadMap, cells: list[dict[str, Any]], link: str | None, label: str, kind: str) -> dict[str, Any]:
    n_layers, n_heads = headmap.facts.n_layers, headmap.facts.n_heads
    left, top = 30, 16  # room for the head labels (left) and layer labels (top)
    for c in cells:
        c["x"] = left + c["layer"] * CELL
        c["y"] = top + c["head"] * CELL
        c["href"] = link.format(name=c["name"]) if link else None
    layer_step = 1 if n_layers <= 32 else (2 if n_layers <= 64 else 4)
    return {
        "kind": kind,
        "type_id": None,
        "label": label,
        "cell": CELL,
        "width": left + n_layers * CELL + 4,
        "height": top + n_heads * CELL + 4,
        "cells": cells,
        "layer_labels": [
            {"x": left + layer * CELL + CELL / 2, "text": str(layer)} for layer in range(0, n_layers, layer_step)
        ],
        "head_labels": [{"y": top + head * CELL + CELL / 2 + 3, "text": f"H{head}"} for head in range(n_heads)],
        "left": left,
        "top": top,
    }


def heatmap(headmap: HeadMap, type_id: str, link: str | None = None) -> dict[str, Any]:
    """Layers (x) × heads (y) grid of one head type's scores, viridis-coloured; members outlined.

    ``link`` is a format string with ``{name}`` (e.g. ``/scans/1/heads/{name}``) for clickable cells.
    """
    matrix = headmap.matrix(type_id)
    info = headmap.head_types[type_id]
    vmax = max(1.0, float(max((v for v in matrix.flatten() if not math.isnan(v)), default=1.0)))
    cells = []
    for layer in range(headmap.facts.n_layers):
        for head in range(headmap.facts.n_heads):
            value = float(matrix[layer, head])
            score = None if math.isnan(value) else value
            member = score is not None and score >= float(info["threshold"])
            name = head_name(layer, head)
            cells.append(
                {
                    "layer": layer,
                    "head": head,
                    "name": name,
                    "fill": score_color(score, vmax),
                    "member": member,
                    "title": f"{name} · {type_id} {_fmt(score)}{' · member' if member else ''}",
                }
            )
    grid = _grid(headmap, cells, link, info.get("name", type_id), "scores")
    grid["type_id"] = type_id
    grid["vmax"] = vmax
    return grid


STRONGEST_RULE = (
    "A head's colour is the member type it is strongest in, strength = (score − threshold) / (1 − threshold), so"
    " types with low thresholds are not favoured; sink, a resting behaviour many specialised heads share, only"
    " colours a head that is a member of no other type."
)
"""The overview's rule in words (the app and report.html show the same sentence)."""


def overview(headmap: HeadMap, link: str | None = None) -> dict[str, Any]:
    """Every head coloured by its strongest member type (see :func:`strongest_type`); pale when none.

    A cell's title lists every type the head is a member of (with its score); the legend counts, per type, the
    heads it colours (``strongest``) and its members (``members``): a head can be a member of several types.
    """
    colors = type_colors(list(headmap.head_types))
    names = {t: str(i.get("name", t)) for t, i in headmap.head_types.items()}
    by_head = scores_by_head(headmap)
    cells = []
    counts: dict[str, int] = dict.fromkeys(headmap.head_types, 0)
    members: dict[str, int] = dict.fromkeys(headmap.head_types, 0)
    for layer in range(headmap.facts.n_layers):
        for head in range(headmap.facts.n_heads):
            name = head_name(layer, head)
            rows = by_head.get((layer, head), {})
            type_id, ratio = strongest_type(rows)
            joined = [t for t in headmap.head_types if rows.get(t, {}).get("member")]
            for t in joined:
                members[t] += 1
            if type_id is not None:
                counts[type_id] += 1
                title = f"{name} · strongest: {names[type_id]} (strength {_fmt(ratio, 2)})"
                title += "\nmember of: " + "; ".join(f"{names[t]} {_fmt(rows[t]['score'])}" for t in joined)
            else:
                title = f"{name} · member of no head type"
            cells.append(
                {
                    "layer": layer,
                    "head": head,
                    "name": name,
                    "fill": colors[type_id] if type_id else NO_TYPE_COLOR,
                    "member": False,
                    "type_id": type_id,
                    "members": joined,
                    "title": title,
                }
            )
    grid = _grid(headmap, cells, link, "Strongest head type", "overview")
    grid["legend"] = [
        {"type_id": t, "name": names[t], "color": colors[t], "count": counts[t], "members": members[t]}
        for t in headmap.head_types
    ]
    return grid


def top_heads(headmap: HeadMap, k: int = 5, type_ids: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per type: every member, best first, and at least the ``k`` best heads (so a type with no members still
    shows its best candidates). ``type_ids`` limits the types (default: all of the scan's)."""
    wanted = type_ids if type_ids is not None else list(headmap.head_types)
    by_type: dict[str, list[dict[str, Any]]] = {t: [] for t in wanted}
    for r in headmap.rows:  # one pass over the rows, not one per type
        if r["head_type"] in by_type and r["score"] is not None:
            by_type[r["head_type"]].append(r)
    out = {}
    for t, rows in by_type.items():
        rows.sort(key=lambda r: (-r["score"], r["layer"], r["head"]))  # HeadMap.top's order
        n_members = sum(1 for r in rows if r["member"])
        out[t] = [{**r, "name": head_name(r["layer"], r["head"])} for r in rows[: max(k, n_members)]]
    return out


_TASK_SETS = {
    "copying": "weights",
    "negative_copying": "weights",
    "successor": "weights",
    "function_vector": "10-shot in-context task prompts (antonyms, capitals, upper case, next item)",
    "name_mover": "IOI prompts",
    "negative_name_mover": "IOI prompts",
    "s_inhibition": "IOI prompts",
    "safety": "harmful and matched harmless requests",
    "semantic_induction": "relation prompts (country → capital, antonyms)",
}
"""What the types without a shared probe are scored on, for pages that have no scan's own record of it."""


def scored_on(type_id: str, probe: str | None, probe_info: dict[str, Any] | None = None) -> str:
    """What a type's score is computed from, in words: a shared probe, the weights alone, or its own task set.

    ``probe_info`` is the scan's record for the type (``headmap.probes[type_id]``) when there is one.
    """
    info = probe_info or {}
    kind = str(info.get("kind") or "")
    if probe:
        return f"the weights and the {probe} probe" if kind.startswith("weights+") else f"the {probe} probe"
    task = _TASK_SETS.get(type_id)
    if kind == "weights" or task == "weights":
        return "the weights alone (no prompts)"
    own = info.get("probe")
    if task:
        return f"its own task set: {task}"
    return f"its own task set ({own})" if own else "its own task set"


def head_detail(headmap: HeadMap, layer: int, head: int) -> dict[str, Any]:
    """All scores of one head, with rank among the model's heads for each type."""
    rows = scores_by_head(headmap).get((layer, head), {})
    out = []
    for type_id, info in headmap.head_types.items():
        row = rows.get(type_id)
        if row is None:
            continue
        scored = sorted(r["score"] for r in headmap.rows if r["head_type"] == type_id and r["score"] is not None)
        rank = None
        if row["score"] is not None:
            rank = 1 + sum(1 for s in scored if s > row["score"])
        out.append(
            {
                "head_type": type_id,
                "name": info.get("name", type_id),
                "score": row["score"],
                "score_se": row.get("score_se"),
                "threshold": row["threshold"],
                "member": bool(row["member"]),
                "rank": rank,
                "of": len(scored),
                "attribution": row.get("attribution"),
                "ablation_effect": row.get("ablation_effect"),
                "fill": score_color(row["score"]),
            }
        )
    strongest, ratio = strongest_type(rows)
    return {
        "name": head_name(layer, head),
        "layer": layer,
        "head": head,
        "kv_head": head // max(1, headmap.facts.n_heads // max(1, headmap.facts.n_kv_heads)),
        "scores": out,
        "strongest": strongest,
        "strongest_strength": ratio,
        "has_causal": any(s["attribution"] is not None or s["ablation_effect"] is not None for s in out),
    }


def has_causal_columns(headmap: HeadMap) -> bool:
    return any(r.get("attribution") is not None or r.get("ablation_effect") is not None for r in headmap.rows)


_VERIFICATION_SHOWN = {
    "status", "verified", "metric", "metric_description", "method", "members", "effect", "random_mean",
    "random_std", "random_max", "p_value", "z_score", "rule", "per_head", "random_effects", "random_sets",
    "clean_metric", "ablated_metric", "n_random", "layer_window", "effect_ci", "p_holm", "n_tests", "stopped_early",
    "n_prompts", "random_population", "screen",
}  # fmt: skip


def _screen(value: Any) -> dict[str, Any] | None:
    """The screening test a strict one replaced (``atlas strict``): its verdict, p and number of sets."""
    if not isinstance(value, dict):
        return None
    return {"verified": value.get("verified"), "p_value": _num(value.get("p_value")), "n_random": value.get("n_random")}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def verification_rows(headmap: HeadMap) -> list[dict[str, Any]]:
    """``headmap.verification`` (see :mod:`headatlas.causal.verify`) shaped for a table: one row per head type.

    The set test (members ablated together vs random head sets of the same size), its p-value, and the per-head
    check (exact single-head ablation vs attribution patching); keys this layer does not know are listed as text.
    """
    rows = []
    for type_id, result in headmap.verification.items():
        record = result if isinstance(result, dict) else {"result": result}
        raw = record.get("per_head")
        per_head: dict[str, Any] = raw if isinstance(raw, dict) else {}
        heads = per_head.get("exact_heads") or []
        exact = per_head.get("exact_effects") or []
        attr = per_head.get("attributions") or []
        members = [str(m) for m in record.get("members") or []]
        interval = record.get("effect_ci")
        stable = headmap.stability.get(type_id, {})
        rows.append(
            {
                "head_type": type_id,
                "name": headmap.head_types.get(type_id, {}).get("name", type_id),
                "status": str(record.get("status", "")),
                "verified": record.get("verified"),
                "metric": str(record.get("metric", "")),
                "metric_description": str(record.get("metric_description", "")),
                "method": str(record.get("method", "")),
                "members": members,
                "effect": _num(record.get("effect")),
                "random_mean": _num(record.get("random_mean")),
                "random_std": _num(record.get("random_std")),
                "random_max": _num(record.get("random_max")),
                "effect_ci": [_num(x) for x in interval] if isinstance(interval, list) and len(interval) == 2 else None,
                "p_value": _num(record.get("p_value")),
                "p_holm": _num(record.get("p_holm")),
                "n_tests": record.get("n_tests"),
                "z_score": _num(record.get("z_score")),
                "n_random": record.get("n_random") if record.get("random_effects") else None,  # the set test ran
                "all_random_sets": record.get("random_population") is not None
                and record.get("random_population") == record.get("n_random"),
                "layer_window": record.get("layer_window") or 0,
                "n_prompts": record.get("n_prompts"),
                "screen": _screen(record.get("screen")),
                "jaccard": _num(stable.get("jaccard")),
                "stable_members": [str(m) for m in stable.get("stable_members") or []],
                "seeds": stable.get("seeds") or [],
                "spearman": _num(per_head.get("spearman_attribution_vs_exact")),
                "rule": str(record.get("rule", "")),
                "per_head": [
                    {"head": str(h), "exact": _num(e), "attribution": _num(a), "member": str(h) in members}
                    for h, e, a in zip(heads, exact, attr, strict=False)
                ],
                "other": [(str(k), _short(v)) for k, v in sorted(record.items()) if k not in _VERIFICATION_SHOWN],
            }
        )
    return rows


def _short(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, str | int | bool) or value is None:
        return _fmt(value)
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "…"


def facts_rows(headmap: HeadMap) -> list[tuple[str, str]]:
    f = headmap.facts
    rows = [
        ("model", f.name),
        ("source", f.source),
        ("architecture", f.architecture),
        ("layers × heads", f"{f.n_layers} × {f.n_heads} = {f.n_head_total} heads"),
        ("KV heads", f"{f.n_kv_heads}" + (" (GQA)" if 1 < f.n_kv_heads < f.n_heads else "")),
        ("head dim / d_model", f"{f.head_dim} / {f.d_model}"),
        ("vocabulary", str(f.vocab_size)),
        (
            "sliding window",
            f"{f.sliding_window} on layers {', '.join(map(str, f.sliding_layers))}" if f.sliding_window else "none",
        ),
        ("weights sha256", f.sha256 or "–"),
        ("seed", str(headmap.settings.get("seed", "–"))),
        ("dtype", str(headmap.settings.get("dtype", "–"))),
        ("headatlas", str(headmap.settings.get("headatlas_version", "–"))),
    ]
    return rows


@lru_cache(maxsize=4)
def asset(name: str) -> str:
    """Text of a packaged static asset (``app.css``, ``app.js``)."""
    return resources.files("headatlas.web").joinpath("static", name).read_text(encoding="utf-8")


def example_for_head(patterns: dict[str, Any] | None, name: str, types: Sequence[str] = ()) -> int:
    """Index of the pattern example to open for a head: the evidence of the first of ``types`` (the head's
    types, strongest first) that holds the head; else the example where it leans least on the first token.

    Most heads park weight on BOS when their pattern is absent (an induction head on prose), so the example
    with the least mean weight on position 0 is the one that shows what the head does.
    """
    if not patterns:
        return 0
    for type_id in types:
        found = example_of_type(patterns, type_id, name)
        if found is not None:
            return found
    best, best_bos = 0, math.inf
    for i, ex in enumerate(patterns.get("examples", [])):
        rows = ex.get("heads", {}).get(name)
        if not rows or len(rows) < 2:
            continue
        bos = sum(r[0] for r in rows[1:]) / (len(rows) - 1)
        if bos < best_bos - 1e-9:
            best, best_bos = i, bos
    return best


def head_types_of(detail: dict[str, Any]) -> list[str]:
    """A head's types for choosing its pattern example: its strongest type, then its other memberships."""
    members = [s["head_type"] for s in detail["scores"] if s["member"]]
    strongest = detail.get("strongest")
    return [strongest, *[t for t in members if t != strongest]] if strongest else members


def _schema_type(spec: dict[str, Any]) -> str:
    """An OpenAPI schema as a short readable type: ``int``, ``list[Paper]``, ``str | null``, ``Paper``."""
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    for union in ("anyOf", "oneOf"):
        if union in spec:
            return " | ".join(_schema_type(s) for s in spec[union])
    kind = spec.get("type")
    if kind == "array":
        return f"list[{_schema_type(spec.get('items', {}))}]"
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return f"dict[str, {_schema_type(spec['additionalProperties'])}]"
    return {"integer": "int", "string": "str", "number": "float", "boolean": "bool", "object": "object"}.get(
        str(kind), str(kind or "any")
    )


def openapi_docs(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema shaped for a server-rendered docs page (no CDN scripts): endpoints with their
    parameters and response types, then the response models with their fields."""
    endpoints = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = [
                {
                    "name": p.get("name", ""),
                    "in": p.get("in", ""),
                    "required": bool(p.get("required")),
                    "type": _schema_type(p.get("schema", {})),
                    "description": p.get("description") or p.get("schema", {}).get("description", ""),
                }
                for p in op.get("parameters", [])
            ]
            ok: dict[str, dict[str, Any]] = op.get("responses", {}).get("200", {}).get("content", {})
            media, body = next(iter(ok.items()), ("", {}))
            returned: dict[str, Any] = body.get("schema") or {}
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": (op.get("description") or op.get("summary") or "").split("\n\n")[0].split(". ")[0],
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or ["other"])[0],
                    "params": params,
                    "returns": _schema_type(returned) if returned else media or "–",
                    "media": media,
                    "example": path if "{" not in path and not any(p["required"] for p in params) else None,
                }
            )
    models = []
    for name, spec in sorted(schema.get("components", {}).get("schemas", {}).items()):
        if name in ("HTTPValidationError", "ValidationError"):
            continue
        required = set(spec.get("required", []))
        models.append(
            {
                "name": name,
                "description": spec.get("description", ""),
                "fields": [
                    {
                        "name": f,
                        "type": _schema_type(s),
                        "required": f in required,
                        "description": s.get("description", ""),
                    }
                    for f, s in spec.get("properties", {}).items()
                ],
            }
        )
    info = schema.get("info", {})
    return {"title": info.get("title", ""), "version": info.get("version", ""),
            "description": info.get("description", ""), "endpoints": endpoints, "models": models}  # fmt: skip


COMPARE_WIDTH = 560  # px of the depth axis (layer 0 at the left edge, the last layer at the right)
COMPARE_HEIGHT = 54  # px of one model's strip (its heads stacked, whatever their number)


def depth(layer: int, n_layers: int) -> float:
    """A layer's position in the stack: 0 for the first layer, 1 for the last (``layer / (n_layers - 1)``)."""
    return layer / (n_layers - 1) if n_layers > 1 else 0.0


def model_key(name: str) -> str:
    """A model name reduced for matching a paper's wording to a scan ("GPT-2 small" and "gpt2" agree)."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return {"gpt2small": "gpt2", "gpt2124m": "gpt2"}.get(key, key)


def compare_view(
    scans: list[tuple[dict[str, Any], HeadMap]], type_ids: list[str], reported: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per head type, each scan as a strip on a depth-normalised layer axis (one column per layer, coloured by its
    best score in viridis; members dotted at their head's row),
    with its member count, best head and members' mean depth; ``reported`` heads (a paper's, with ``paper_id``,
    ``paper_title``, ``model``, ``head``, ``head_type``) are ringed on the scan of the same model."""
    out = []
    for type_id in type_ids:
        rows = []
        name = type_id
        for meta, hm in scans:
            if type_id not in hm.head_types:
                rows.append({"scan": meta, "model": hm.facts.name, "missing": True})
                continue
            name = str(hm.head_types[type_id].get("name", type_id))
            n_layers, n_heads = hm.facts.n_layers, hm.facts.n_heads
            col, row_h = COMPARE_WIDTH / n_layers, COMPARE_HEIGHT / n_heads
            matrix = hm.matrix(type_id)
            threshold = float(hm.head_types[type_id].get("threshold") or 0.0)
            vmax = max(1.0, float(np.nanmax(matrix)) if not np.isnan(matrix).all() else 1.0)
            keys = {model_key(hm.facts.name), model_key(hm.facts.source.rsplit("/", 1)[-1]), model_key(meta["model"])}
            marks = [r for r in reported if r.get("head_type") == type_id and model_key(str(r.get("model"))) in keys]
            cells, dots, members = [], [], []
            for layer in range(n_layers):  # one column per layer, coloured by its best head's score
                scores = [float(v) for v in matrix[layer] if not math.isnan(v)]
                best_head = int(np.nanargmax(matrix[layer])) if scores else None
                in_layer = 0
                for head in range(n_heads):
                    value = float(matrix[layer, head])
                    if not math.isnan(value) and value >= threshold:
                        in_layer += 1
                        hname = head_name(layer, head)
                        members.append((layer, hname, value))
                        dots.append({"cx": round((layer + 0.5) * col, 2), "cy": round((head + 0.5) * row_h, 2),
                                     "name": hname, "title": f"{hname} · depth {depth(layer, n_layers):.2f} · score "
                                     f"{_fmt(value)} · member"})  # fmt: skip
                top_score = max(scores) if scores else None
                cells.append(
                    {"x": round(layer * col, 2), "w": round(max(col - 0.6, 0.6), 2),
                     "fill": score_color(top_score, vmax),
                     "title": f"layer {layer} (depth {depth(layer, n_layers):.2f}): best "
                     + (f"{head_name(layer, best_head)} {_fmt(top_score)}" if best_head is not None else "–")
                     + f"; {in_layer} member{'s' if in_layer != 1 else ''}"}
                )  # fmt: skip
            rings = []
            for r in marks:
                try:
                    layer, head = parse_head(str(r.get("head")), n_layers, n_heads)
                except InvalidSettingError:
                    continue
                rings.append(
                    {"cx": round((layer + 0.5) * col, 2), "cy": round((head + 0.5) * row_h, 2),
                     "r": round(max(3.0, min(col, row_h) / 2 + 1), 2), "head": head_name(layer, head),
                     "paper_id": r.get("paper_id"), "paper_title": r.get("paper_title")}
                )  # fmt: skip
            best = max(members, key=lambda m: m[2]) if members else None
            top = hm.top(type_id, 1)
            rows.append(
                {
                    "scan": meta,
                    "model": hm.facts.name,
                    "missing": False,
                    "n_layers": n_layers,
                    "n_heads": n_heads,
                    "n_members": len(members),
                    "best": top[0] if top else None,
                    "best_depth": depth(top[0]["layer"], n_layers) if top else None,
                    "mean_depth": sum(depth(m[0], n_layers) for m in members) / len(members) if members else None,
                    "members": [m[1] for m in sorted(members, key=lambda m: -m[2])],
                    "cells": cells,
                    "dots": dots,
                    "dot_r": round(max(1.6, min(3.2, col / 2 - 0.6, row_h / 2 - 0.3)), 2),
                    "rings": rings,
                    "reported": [{**r, "in_scan": any(g["head"] == r.get("head") for g in rings)} for r in marks],
                    "vmax": vmax,
                    "best_is_member": best is not None,
                }
            )
        out.append({"type_id": type_id, "name": name, "scans": rows})
    return out


def member_counts(headmap: HeadMap) -> dict[str, int]:
    """Members per head type, in the scan's type order (one pass over the rows)."""
    counts = dict.fromkeys(headmap.head_types, 0)
    for r in headmap.rows:
        if r["member"] and r["head_type"] in counts:
            counts[r["head_type"]] += 1
    return counts
