"""Papers ↔ scans: which heads that papers named in this very checkpoint are members of a scan's head types.

For every head type a scan scored and a paper reported heads of (in the same checkpoint), the agreement lists each
reported head with its rank among the scan's scores of that type (1 = strongest), its score and whether it is a
member here; the papers' heads the scan does not count as members; and the scan's members no paper named.
Reported heads of a type the scan did not score are listed apart (nothing to compare them with).

Same checkpoint: the scan's model name (its hub id; a zoo alias stands for the hub id its weights come from)
and the paper's model name agree after short names are resolved to hub ids (``gpt2-small``, ``GPT-2 small`` ->
``openai-community/gpt2``), case ignored; a paper name without an organisation (``Llama-2-7B-80K``) matches a
hub id with the same repository name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..headmap import HeadMap, head_name
from ..models.names import hub_id_for


def _hub_key(name: str) -> str:
    text = name.strip()
    candidates = [text, re.sub(r"[\s_]+", "-", text.lower())]
    candidates.append(re.sub(r"\bgpt-(\d)", r"gpt\1", candidates[-1]))  # "gpt-2-small" -> "gpt2-small"
    for candidate in candidates:
        resolved = hub_id_for(candidate)
        if resolved:
            return resolved.lower()
    return text.lower()


def scan_checkpoints(headmap: HeadMap) -> set[str]:
    """Keys of the checkpoint a scan read: its model name, and for a zoo alias the hub id its weights come from."""
    keys = {_hub_key(headmap.facts.name)}
    if headmap.facts.source == "zoo":
        from ..models.zoo import ZOO

        entry = ZOO.get(headmap.facts.name)
        if entry is not None:
            keys.add(entry.hub_id.lower())
    return keys


def same_checkpoint(reported_model: str, scan_keys: set[str]) -> bool:
    key = _hub_key(reported_model)
    if key in scan_keys:
        return True
    if "/" not in key:  # a paper's name without the organisation: compare repository names
        return any(k.rsplit("/", 1)[-1] == key for k in scan_keys)
    return False


@dataclass(frozen=True)
class ReportedHere:
    """One reported head read against the scan: ``rank`` among the type's scores here (1 = strongest; None when
    the head has no score here, e.g. it lies outside the model)."""

    paper_id: str
    paper_title: str
    head: str
    model: str
    reported_score: float | None
    score: float | None
    rank: int | None
    member: bool
    note: str = ""


@dataclass(frozen=True)
class TypeAgreement:
    head_type: str
    name: str
    n_scored: int
    members: tuple[str, ...]
    reported: tuple[ReportedHere, ...]

    @property
    def found(self) -> tuple[ReportedHere, ...]:
        """Reported heads that are members here."""
        return tuple(r for r in self.reported if r.member)

    @property
    def missed(self) -> tuple[ReportedHere, ...]:
        """Reported heads the scan does not count as members."""
        return tuple(r for r in self.reported if not r.member)

    @property
    def unnamed(self) -> tuple[str, ...]:
        """Members here that no paper named."""
        named = {r.head for r in self.reported}
        return tuple(m for m in self.members if m not in named)

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_type": self.head_type,
            "name": self.name,
            "n_scored": self.n_scored,
            "n_reported": len({r.head for r in self.reported}),
            "n_found": len({r.head for r in self.found}),
            "members": list(self.members),
            "reported": [r.__dict__ for r in self.reported],
            "missed": sorted({r.head for r in self.missed}, key=_head_order),
            "unnamed": list(self.unnamed),
        }


@dataclass(frozen=True)
class Agreement:
    model: str
    types: tuple[TypeAgreement, ...]
    unscored: dict[str, tuple[ReportedHere, ...]] = field(default_factory=dict)
    """Reported heads of head types this scan did not score, by type."""

    @property
    def papers(self) -> tuple[str, ...]:
        ids = [r.paper_id for t in self.types for r in t.reported]
        ids += [r.paper_id for rows in self.unscored.values() for r in rows]
        return tuple(sorted(set(ids)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "papers": list(self.papers),
            "types": [t.to_dict() for t in self.types],
            "unscored": {t: [r.__dict__ for r in rows] for t, rows in self.unscored.items()},
        }


def _head_order(name: str) -> tuple[int, int]:
    m = re.match(r"L(\d+)H(\d+)$", name)
    return (int(m.group(1)), int(m.group(2))) if m else (10**9, 10**9)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def reported_entries(papers: Iterable[Any]) -> list[tuple[str, str, Any]]:
    """``(paper id, title, reported head)`` for every reported head of ``papers`` (``Paper`` objects or their dict
    form)."""
    out = []
    for paper in papers:
        for head in _get(paper, "reported_heads") or ():
            out.append((str(_get(paper, "id")), str(_get(paper, "title")), head))
    return out


def agreement(headmap: HeadMap, papers: Iterable[Any]) -> Agreement:
    """The agreement between ``headmap`` and the heads ``papers`` reported in the same checkpoint."""
    keys = scan_checkpoints(headmap)
    by_type: dict[str, list[tuple[str, str, Any]]] = {}
    for paper_id, title, head in reported_entries(papers):
        if same_checkpoint(str(_get(head, "model")), keys):
            by_type.setdefault(str(_get(head, "head_type")), []).append((paper_id, title, head))
    types: list[TypeAgreement] = []
    unscored: dict[str, tuple[ReportedHere, ...]] = {}
    for type_id, entries in sorted(by_type.items()):
        rows = [r for r in headmap.rows if r["head_type"] == type_id]
        scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: (-r["score"], r["layer"], r["head"]))
        rank = {head_name(r["layer"], r["head"]): i for i, r in enumerate(scored, 1)}
        score = {head_name(r["layer"], r["head"]): float(r["score"]) for r in scored}
        member = {head_name(r["layer"], r["head"]) for r in rows if r["member"]}
        reported = tuple(
            sorted(
                (
                    ReportedHere(
                        paper_id=paper_id,
                        paper_title=title,
                        head=str(_get(head, "head")),
                        model=str(_get(head, "model")),
                        reported_score=_get(head, "score"),
                        score=score.get(str(_get(head, "head"))),
                        rank=rank.get(str(_get(head, "head"))),
                        member=str(_get(head, "head")) in member,
                        note=str(_get(head, "note") or ""),
                    )
                    for paper_id, title, head in entries
                ),
                key=lambda r: (_head_order(r.head), r.paper_id),
            )
        )
        if type_id not in headmap.head_types or not scored:
            unscored[type_id] = reported
            continue
        members = tuple(head_name(r["layer"], r["head"]) for r in scored if head_name(r["layer"], r["head"]) in member)
        name = str(headmap.head_types[type_id].get("name", type_id))
        types.append(TypeAgreement(type_id, name, len(scored), members, reported))
    return Agreement(headmap.facts.name, tuple(types), unscored)


def render_text(result: Agreement) -> str:
    """The agreement as lines for a terminal: per type, the papers' heads with rank and score here."""
    if not result.types and not result.unscored:
        return f"{result.model}: no paper in the catalogue reports heads of this checkpoint"
    lines = [f"{result.model}: heads named by {len(result.papers)} paper(s) ({', '.join(result.papers)})"]
    for t in result.types:
        heads = {r.head for r in t.reported}
        found = {r.head for r in t.found}
        lines.append(
            f"{t.head_type}: {len(found)} of {len(heads)} reported heads are members here"
            f" ({len(t.members)} members, {t.n_scored} heads scored)"
        )
        for r in t.reported:
            where = f"rank {r.rank} of {t.n_scored}, score {r.score:.3f}" if r.rank is not None else "not scored here"
            mark = "member" if r.member else "not a member"
            lines.append(f"  {r.head:<8} {mark:<13} {where}  [{r.paper_id}]")
        if t.unnamed:
            lines.append(f"  members no paper named: {', '.join(t.unnamed)}")
    for type_id, rows in result.unscored.items():
        listed = ", ".join(dict.fromkeys(r.head for r in rows))
        lines.append(f"{type_id}: not scored in this scan; reported {listed}")
    return "\n".join(lines)


__all__ = ["Agreement", "ReportedHere", "TypeAgreement", "agreement", "render_text", "same_checkpoint"]
