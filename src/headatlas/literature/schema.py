"""The paper catalogue's record types: frozen, validated on construction, round-trippable through plain dicts.

A :class:`Paper` is one entry of the attention-head literature list (the seed list this project grew from,
later contributions and ingested papers). Field names follow the list's contribution form: a summary in three
parts (innovation / tasks / significant result), the head names the paper defines or studies, and the source.
Head names are kept twice: ``tags`` as written in the list (``S--Inhibition_Head``) and ``head_types`` as
normalised vocabulary ids (``s_inhibition``), see :mod:`headatlas.literature.vocabulary`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..errors import CatalogueError
from ..fileio import has_surrogates
from .identity import title_slug

STAGES = ("KR", "ICI", "LR", "EP")
"""Survey stages (Attention Heads of Large Language Models: A Survey, arXiv 2409.03752): Knowledge Recalling,
In-Context Identification, Latent Reasoning, Expression Preparation."""

METHODS = (
    "directional_addition",
    "directional_subtraction",
    "zero_ablation",
    "mean_ablation",
    "activation_patching",
    "probing",
    "simplified_model_training",
    "scoring",
    "information_flow",
    "circuit_discovery",
)
"""Discovery methods of the survey. Modeling-free: directional addition / subtraction (modification-based);
zero ablation, mean ablation, naive activation patching (replacement-based). Modeling-required: probing and
training simplified models (training-required); scoring (retrieval score, negative attention score …),
information-flow graphs and automated circuit discovery such as ACDC (training-free)."""

METHOD_FAMILY = {
    "directional_addition": "modeling_free",
    "directional_subtraction": "modeling_free",
    "zero_ablation": "modeling_free",
    "mean_ablation": "modeling_free",
    "activation_patching": "modeling_free",
    "probing": "modeling_required",
    "simplified_model_training": "modeling_required",
    "scoring": "modeling_required",
    "information_flow": "modeling_required",
    "circuit_discovery": "modeling_required",
}

SOURCES = ("seed", "contribution", "ingest")
"""Where an entry came from: the seed list, a contribution form, or automatic ingestion."""

LINK_KINDS = ("paper", "code", "data", "blog", "demo")

ASSIGNABLE = ("id", "authors", "head_types", "stages", "methods", "models", "tasks", "reported_heads", "date")
"""Fields a maintainer may fill from outside the source text (recorded in ``Provenance.assigned``)."""

_ARXIV_NEW = re.compile(r"^\d{4}\.\d{4,5}$")
_ARXIV_OLD = re.compile(r"^[a-z\-]+(\.[A-Z]{2})?/\d{7}$")
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_HEAD_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_HEAD_NAME = re.compile(r"^L(\d+)H(\d+)$")


def is_arxiv_id(value: str) -> bool:
    """True for a versionless arXiv identifier (``2404.15574`` or ``hep-th/9901001``)."""
    return bool(_ARXIV_NEW.match(value) or _ARXIV_OLD.match(value))


def slugify(title: str, year: int) -> str:
    """Stable id for a paper without an arXiv id: ``<first five title words>-<year>`` (see :func:`title_slug`)."""
    return title_slug(title, year)


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CatalogueError(f"{where}: field '{key}' is missing")
        return ""
    if not isinstance(value, str):
        raise CatalogueError(f"{where}: field '{key}' must be text, got {type(value).__name__}")
    if has_surrogates(value):
        raise CatalogueError(f"{where}: field '{key}' holds a lone surrogate (not valid Unicode text)")
    return value.strip()


def _texts(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if not value:
        if value is None or value == []:
            return ()
        raise CatalogueError(f"{where}: field '{key}' must be a list of non-empty strings")
    if not isinstance(value, list):
        raise CatalogueError(f"{where}: field '{key}' must be a list of non-empty strings")
    out = []
    for v in value:
        stripped = v.strip() if isinstance(v, str) and not has_surrogates(v) else ""
        if not stripped:
            raise CatalogueError(f"{where}: field '{key}' must be a list of non-empty strings")
        out.append(stripped)
    return tuple(out)


def parse_date(value: object, where: str, *, today: date | None = None) -> date:
    """An ISO date (``YYYY-MM-DD``), not in the future. ``today`` is injectable for tests."""
    if isinstance(value, _dt.datetime):  # YAML reads a bare ``2024-05-01 10:00:00`` as a datetime
        parsed = value.date()
    elif isinstance(value, date):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise CatalogueError(f"{where}: field 'date' must be a date YYYY-MM-DD, got {value!r}") from None
    else:
        raise CatalogueError(f"{where}: field 'date' must be a date YYYY-MM-DD, got {value!r}")
    limit = today or date.today()
    if parsed > limit:
        raise CatalogueError(f"{where}: field 'date' {parsed.isoformat()} is in the future (today is {limit})")
    return parsed


@dataclass(frozen=True)
class Summary:
    """The list's three-part summary, in the catalogue's own words."""

    innovation: str
    tasks: str
    result: str

    def __post_init__(self) -> None:
        for name in ("innovation", "tasks", "result"):
            if not getattr(self, name).strip():
                raise CatalogueError(f"summary field '{name}' is empty")

    def text(self) -> str:
        return f"{self.innovation} {self.tasks} {self.result}"


@dataclass(frozen=True)
class ReportedHead:
    """A head a paper names, as ``L<layer>H<head>`` in the paper's model (e.g. GPT-2 small L9H9 name mover)."""

    model: str
    head: str
    head_type: str
    score: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise CatalogueError("reported head: field 'model' is empty")
        if not _HEAD_NAME.match(self.head):
            raise CatalogueError(f"reported head: field 'head' must look like L9H9, got {self.head!r}")
        if not _HEAD_ID.match(self.head_type):
            raise CatalogueError(f"reported head: field 'head_type' must be a snake_case id, got {self.head_type!r}")

    @property
    def layer_head(self) -> tuple[int, int]:
        m = _HEAD_NAME.match(self.head)
        assert m is not None  # validated in __post_init__
        return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class Provenance:
    """Where an entry came from, when it was added, and which fields were assigned by hand.

    ``assigned`` names fields filled from outside the source text (e.g. an arXiv ``id`` the list did not give,
    or ``models`` read from the paper); ``note`` says anything else a reviewer should know.
    """

    source: str
    added: date
    assigned: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise CatalogueError(f"provenance: field 'source' must be one of {', '.join(SOURCES)}, got {self.source!r}")
        bad = [a for a in self.assigned if a not in ASSIGNABLE]
        if bad:
            raise CatalogueError(
                f"provenance: field 'assigned' has unknown names {bad}; valid are {', '.join(ASSIGNABLE)}"
            )


@dataclass(frozen=True)
class Paper:
    """One catalogue entry. ``id`` is the versionless arXiv id when known, else :func:`slugify` of the title."""

    id: str
    title: str
    date: date
    venue: str
    summary: Summary
    tags: tuple[str, ...]
    head_types: tuple[str, ...]
    provenance: Provenance
    authors: tuple[str, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    reported_heads: tuple[ReportedHead, ...] = ()

    def __post_init__(self) -> None:
        where = f"paper {self.id!r}"
        if not (is_arxiv_id(self.id) or _SLUG.match(self.id)):
            raise CatalogueError(f"{where}: field 'id' must be an arXiv id (2404.15574) or a lower-case slug")
        if not self.title.strip():
            raise CatalogueError(f"{where}: field 'title' is empty")
        if not self.venue.strip():
            raise CatalogueError(f"{where}: field 'venue' is empty")
        if not self.head_types:
            raise CatalogueError(f"{where}: field 'head_types' is empty; every entry names at least one head type")
        for ht in self.head_types:
            if not _HEAD_ID.match(ht):
                raise CatalogueError(f"{where}: head type {ht!r} is not a snake_case id")
        if len(set(self.head_types)) != len(self.head_types):
            raise CatalogueError(f"{where}: field 'head_types' lists an id twice")
        bad_stages = [s for s in self.stages if s not in STAGES]
        if bad_stages:
            raise CatalogueError(f"{where}: field 'stages' has {bad_stages}; valid are {', '.join(STAGES)}")
        bad_methods = [m for m in self.methods if m not in METHODS]
        if bad_methods:
            raise CatalogueError(f"{where}: field 'methods' has {bad_methods}; valid are {', '.join(METHODS)}")
        bad_links = [k for k in self.links if k not in LINK_KINDS]
        if bad_links:
            raise CatalogueError(f"{where}: field 'links' has {bad_links}; valid kinds are {', '.join(LINK_KINDS)}")
        for kind, url in self.links.items():
            if not isinstance(url, str) or has_surrogates(url) or not url.startswith(("https://", "http://")):
                raise CatalogueError(f"{where}: link '{kind}' must be an http(s) URL, got {url!r}")

    @property
    def arxiv_id(self) -> str | None:
        return self.id if is_arxiv_id(self.id) else None

    @property
    def year(self) -> int:
        return self.date.year

    # ----- plain-dict form (the YAML / JSON file format) -----

    def to_dict(self) -> dict[str, Any]:
        """Plain data with a fixed key order; empty optional fields are left out so the file stays short."""
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "date": self.date.isoformat(),
            "venue": self.venue,
        }
        if self.authors:
            out["authors"] = list(self.authors)
        if self.links:
            out["links"] = {k: self.links[k] for k in LINK_KINDS if k in self.links}
        out["tags"] = list(self.tags)
        out["head_types"] = list(self.head_types)
        for name in ("stages", "methods", "models", "tasks"):
            values = getattr(self, name)
            if values:
                out[name] = list(values)
        out["summary"] = {
            "innovation": self.summary.innovation,
            "tasks": self.summary.tasks,
            "result": self.summary.result,
        }
        if self.reported_heads:
            out["reported_heads"] = [_head_to_dict(h) for h in self.reported_heads]
        prov: dict[str, Any] = {"source": self.provenance.source, "added": self.provenance.added.isoformat()}
        if self.provenance.assigned:
            prov["assigned"] = list(self.provenance.assigned)
        if self.provenance.note:
            prov["note"] = self.provenance.note
        out["provenance"] = prov
        return out

    @classmethod
    def from_dict(cls, data: Any, *, today: _dt.date | None = None) -> Paper:
        """Validate one entry of the file format; errors name the entry and the field."""
        if not isinstance(data, Mapping):
            raise CatalogueError(f"a paper entry must be a mapping, got {type(data).__name__}")
        pid = data.get("id")
        where = f"paper {pid!r}" if pid else "paper without id"
        known = {
            "id", "title", "date", "venue", "authors", "links", "tags", "head_types", "stages", "methods",
            "models", "tasks", "summary", "reported_heads", "provenance",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise CatalogueError(f"{where}: unknown fields {unknown}")
        summary = data.get("summary")
        if not isinstance(summary, Mapping):
            raise CatalogueError(f"{where}: field 'summary' is missing or not a mapping")
        links = data.get("links") or {}
        if not isinstance(links, Mapping) or not all(isinstance(v, str) for v in links.values()):
            raise CatalogueError(f"{where}: field 'links' must map kinds to URLs")
        prov = data.get("provenance")
        if not isinstance(prov, Mapping):
            raise CatalogueError(f"{where}: field 'provenance' is missing or not a mapping")
        heads = data.get("reported_heads") or []
        if not isinstance(heads, list):
            raise CatalogueError(f"{where}: field 'reported_heads' must be a list")
        try:
            return cls(
                id=_text(data, "id", where),
                title=_text(data, "title", where),
                date=parse_date(data.get("date"), where, today=today),
                venue=_text(data, "venue", where),
                authors=_texts(data, "authors", where),
                links=dict(links),
                tags=_texts(data, "tags", where),
                head_types=_texts(data, "head_types", where),
                stages=_texts(data, "stages", where),
                methods=_texts(data, "methods", where),
                models=_texts(data, "models", where),
                tasks=_texts(data, "tasks", where),
                summary=Summary(
                    innovation=_text(summary, "innovation", f"{where} summary"),
                    tasks=_text(summary, "tasks", f"{where} summary"),
                    result=_text(summary, "result", f"{where} summary"),
                ),
                reported_heads=tuple(_head_from_dict(h, where) for h in heads),
                provenance=Provenance(
                    source=_text(prov, "source", f"{where} provenance"),
                    added=parse_date(prov.get("added"), f"{where} provenance", today=today),
                    assigned=_texts(prov, "assigned", f"{where} provenance"),
                    note=_text(prov, "note", f"{where} provenance", required=False),
                ),
            )
        except CatalogueError as exc:
            if str(exc).startswith(where):
                raise
            raise CatalogueError(f"{where}: {exc}") from None


def _head_to_dict(h: ReportedHead) -> dict[str, Any]:
    out: dict[str, Any] = {"model": h.model, "head": h.head, "head_type": h.head_type}
    if h.score is not None:
        out["score"] = h.score
    if h.note:
        out["note"] = h.note
    return out


def _head_from_dict(data: Any, where: str) -> ReportedHead:
    if not isinstance(data, Mapping):
        raise CatalogueError(f"{where}: each reported head must be a mapping")
    score = data.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise CatalogueError(f"{where}: reported head field 'score' must be a number")
    return ReportedHead(
        model=_text(data, "model", f"{where} reported head"),
        head=_text(data, "head", f"{where} reported head"),
        head_type=_text(data, "head_type", f"{where} reported head"),
        score=float(score) if score is not None else None,
        note=_text(data, "note", f"{where} reported head", required=False),
    )
