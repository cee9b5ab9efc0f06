"""Each head type's evidence: the attention of its member heads on one sample of the type's own probe.

The two shared examples of :mod:`headatlas.capture` (prose, ``[BOS, x, x]``) show every head, but a retrieval
head on prose looks like a sink: its pattern only appears on a needle prompt. So for every head type whose
probe is not one of those two (its pattern probe, else the first probe its causal metric reads: the needle
for retrieval, the IOI prompts for name movers, the 10-shot task prompts for function-vector heads …) the
scan also stores the first sample of that probe as the model saw it, with the patterns of the type's
strongest members (at most :data:`MAX_HEADS` per type), rounded as the shared ones.

Bounded size: a sample of at most :data:`FULL_TOKENS` tokens is stored whole (every query row, a lower
triangle). A longer one keeps only the rows its score reads (at most :data:`MAX_ROWS`) and about
:data:`MAX_CELLS` weights per head: BOS, the spans the probe marks (the needle and its value, the IOI names)
and the tokens just before the rows as key columns; each run of left-out keys becomes one ``⋯`` column holding
their summed weight, so a row still sums to 1. Such an example records ``positions`` (each column's place in
the sample, ``None`` for a ``⋯`` column) and ``rows`` (the column of each query row shown).
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import InvalidSettingError, TaskUnavailable
from .headmap import PATTERN_DIGITS, HeadMap, head_name
from .heads import HeadType, head_types
from .lens import PatternTap, session
from .models.loader import LoadedModel
from .probes import PROBES, ProbeBatch, ProbeSettings
from .probes import repeated as repeated_probe
from .probes import text as text_probe
from .probes.base import token_strings

SHARED = (text_probe.PROBE_ID, repeated_probe.PROBE_ID)
"""Probes the two shared examples already show with every head."""

MAX_HEADS = 8  # members per type, strongest first
FULL_TOKENS = 48  # a sample up to this long is stored whole
MAX_ROWS = 12  # query rows of a longer sample (the last of those its score reads)
MAX_CELLS = 768  # rows x token columns per head of a longer sample: 48 to 128 columns, ⋯ columns not counted
SPAN_PAD = 1  # tokens kept either side of a span

MARKED = {"value_span": "needle value", "io_pos": "IO", "s1_pos": "S1", "s2_pos": "S2"}
"""Probe extras whose positions are marked on the key axis, with their names on the page."""
KEPT = ("needle_span",)
"""Probe extras whose positions are kept as key columns (context for the marked ones), unmarked."""

LABELS = {
    "needle": "needle in a haystack",
    "ioi": "indirect-object (IOI) prompt",
    "fv_tasks": "10-shot in-context task",
    "safety_requests": "chat request",
    "semantic_relations": "relation sentence",
    "ordinal_counting": "ordinal list",
}


def evidence_probe(head_type: HeadType) -> str | None:
    """The probe a type's evidence is shown on: its pattern probe, else the first probe its metric reads."""
    return head_type.probe or next(iter(head_type.probes), None)


def _sample(batches: list[ProbeBatch], limit: int | None) -> tuple[list[int], list[int], dict[str, list[int]]]:
    """The first sample that fits the context window: its ids, the rows its score reads, and its spans (the
    positions of each marked or kept extra)."""
    for batch in batches:
        real = int(batch.attention_mask[0].sum())
        if limit is not None and real > limit:
            continue
        ids = batch.input_ids[0, :real].tolist()
        rows = sorted({int(r) for r in batch.rows[0].tolist() if 0 <= r < real})
        spans: dict[str, list[int]] = {}
        for key in (*MARKED, *KEPT):
            if key in batch.extras:
                value = batch.extras[key][0].reshape(-1).tolist()
                span = range(int(value[0]), int(value[1])) if key.endswith("_span") else [int(value[0])]
                spans[key] = [p for p in span if 0 <= p < real]
        return ids, rows, spans
    return [], [], {}


def _columns(length: int, rows: list[int], spans: dict[str, list[int]]) -> tuple[list[int], list[int]]:
    """Positions kept as key columns and the query rows shown (every one when the sample is short)."""
    if length <= FULL_TOKENS:
        return list(range(length)), list(range(length))
    shown = rows[-MAX_ROWS:] or [length - 1]
    keep = {0, *shown}
    for positions in spans.values():
        if positions:
            keep.update(range(max(min(positions) - SPAN_PAD, 0), min(max(positions) + SPAN_PAD + 1, shown[-1] + 1)))
    budget = min(128, max(48, MAX_CELLS // len(shown)))
    position = shown[-1]
    while len(keep) < budget and position > 0:  # the tokens just before the rows
        keep.add(position)
        position -= 1
    return sorted(p for p in keep if p <= shown[-1]), shown


def _gapped(kept: list[int]) -> list[int | None]:
    """Kept positions with ``None`` wherever a run of positions is left out."""
    out: list[int | None] = []
    for position in kept:
        if out and out[-1] is not None and position > out[-1] + 1:
            out.append(None)
        out.append(position)
    return out


def _row(probs: torch.Tensor, columns: list[int | None], upto: int) -> list[float]:
    """One query row's weights over ``columns[: upto + 1]``: a kept key's own weight, a ⋯ column's sum."""
    out = []
    for i, position in enumerate(columns[: upto + 1]):
        if position is None:
            start, stop = int(columns[i - 1]) + 1, int(columns[i + 1])  # type: ignore[arg-type]
            out.append(round(float(probs[start:stop].sum()), PATTERN_DIGITS))
        else:
            out.append(round(float(probs[position]), PATTERN_DIGITS))
    return out


def _stored_heads(headmap: HeadMap, types: list[str]) -> dict[str, list[str]]:
    """Per type, its strongest members (at most MAX_HEADS)."""
    return {t: [r["name"] for r in headmap.top(t, len(headmap.rows)) if r["member"]][:MAX_HEADS] for t in types}


def probe_example(
    loaded: LoadedModel, probe_id: str, types: list[str], headmap: HeadMap, probes: ProbeSettings, seed: int
) -> dict[str, Any] | None:
    """The evidence example of one probe (``None``: no member to show, or the probe does not fit the model)."""
    heads_of = _stored_heads(headmap, types)
    heads = sorted({h for names in heads_of.values() for h in names}, key=_order)
    if not heads:
        return None
    try:
        batches = PROBES[probe_id](loaded.tokenizer, probes, seed)
    except (TaskUnavailable, InvalidSettingError):
        return None
    ids, rows, spans = _sample(batches, loaded.facts.max_positions)
    if not ids:
        return None
    kept, shown = _columns(len(ids), rows, spans)
    columns = _gapped(kept)
    column_of = {p: i for i, p in enumerate(columns) if p is not None}
    wanted = {_order(h) for h in heads}
    probs_of: dict[tuple[int, int], torch.Tensor] = {}

    def keep(layer: int, probs: torch.Tensor) -> None:
        for head in range(probs.shape[1]):
            if (layer, head) in wanted:
                probs_of[layer, head] = probs[0, head].detach().float().cpu()  # [R, K]

    tensor = torch.tensor([ids], device=loaded.device)
    tap = PatternTap(torch.tensor([shown], device=loaded.device), keep, frozenset(layer for layer, _ in wanted))
    with torch.no_grad(), session(taps=[tap]):
        loaded.model(input_ids=tensor, attention_mask=torch.ones_like(tensor), logits_to_keep=1)
    patterns = {
        head_name(*lh): [_row(probs_of[lh][r], columns, column_of[p]) for r, p in enumerate(shown)]
        for lh in sorted(wanted)
    }
    gap_tokens = token_strings(loaded.tokenizer, ids)
    tokens = []
    for i, position in enumerate(columns):
        if position is None:
            tokens.append(f"⋯ {int(columns[i + 1]) - int(columns[i - 1]) - 1} tokens ⋯")  # type: ignore[arg-type]
        else:
            tokens.append(gap_tokens[position])
    example: dict[str, Any] = {
        "id": probe_id,
        "probe": probe_id,
        "types": types,
        "label": LABELS.get(probe_id, probe_id.replace("_", " ")),
        "length": len(ids),
        "token_ids": [ids[p] if p is not None else None for p in columns],
        "tokens": tokens,
        "scored": [column_of[p] for p in rows if p in column_of],
        "marked": {
            name: [column_of[p] for p in spans[key] if p in column_of] for key, name in MARKED.items() if key in spans
        },
        "members": {t: len(headmap.members(t)) for t in types},
        "stored": heads_of,
        "heads": patterns,
    }
    if len(ids) > FULL_TOKENS:
        example["positions"] = columns
        example["rows"] = [column_of[p] for p in shown]
    return example


def _order(name: str) -> tuple[int, int]:
    layer, head = name[1:].split("H")
    return int(layer), int(head)


def evidence_examples(loaded: LoadedModel, headmap: HeadMap, probes: ProbeSettings, seed: int) -> list[dict[str, Any]]:
    """One evidence example per probe of the head map's types, beyond the two shared ones, in the scan's type
    order (types without a probe, like the weights-only copying scores, have none)."""
    by_probe: dict[str, list[str]] = {}
    registered = head_types()
    for type_id in headmap.head_types:
        if type_id in registered:
            probe = evidence_probe(registered[type_id])
            if probe is not None and probe not in SHARED:
                by_probe.setdefault(probe, []).append(type_id)
    examples = (probe_example(loaded, p, types, headmap, probes, seed) for p, types in by_probe.items())
    return [ex for ex in examples if ex is not None]


def shared_types(headmap: HeadMap) -> dict[str, list[str]]:
    """The head map's types whose evidence is one of the two shared examples, by probe id."""
    registered = head_types()
    out: dict[str, list[str]] = {}
    for type_id in headmap.head_types:
        probe = evidence_probe(registered[type_id]) if type_id in registered else None
        if probe in SHARED:
            out.setdefault(str(probe), []).append(type_id)
    return out


__all__ = ["MAX_HEADS", "evidence_examples", "evidence_probe", "probe_example", "shared_types"]
