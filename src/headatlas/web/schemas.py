"""Response models of the JSON API (they make ``/api/openapi.json`` describe what each endpoint returns)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..headmap import HEAD_SCORE, ScoreField


class ScanInfo(BaseModel):
    id: int
    model: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    seed: int
    created_at: str
    out_dir: str | None = None


class ModelInfo(BaseModel):
    model: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    scans: list[int]


class ScanList(BaseModel):
    scans: list[ScanInfo]
    models: list[ModelInfo]


def _score_field(f: ScoreField) -> Any:
    kind: Any = f.kind | None if f.nullable else f.kind
    return (kind, Field(None if f.nullable else ..., description=f.doc))


HeadScore: type[BaseModel] = create_model(
    "HeadScore",
    __config__=ConfigDict(extra="allow"),
    __doc__="One row of a head map: a head's score for one head type (``L{layer}H{head}``, 0-based).",
    name=(str, Field(description="the head as L{layer}H{head}")),
    **{f.name: _score_field(f) for f in HEAD_SCORE},
)
"""Derived from :data:`headatlas.headmap.HEAD_SCORE`, the one declaration of the row."""


class ScanDetail(BaseModel):
    scan: ScanInfo
    model: dict[str, Any]
    head_types: dict[str, dict[str, Any]]
    members: dict[str, int]
    top: dict[str, list[dict[str, Any]]]
    heads: list[HeadScore]  # type: ignore[valid-type]  # a model built at import (create_model)
    verification: dict[str, Any]
    files: dict[str, str] = {}
    agreement: dict[str, Any] | None = None
    """Papers <-> this scan: heads papers reported in the same checkpoint, per type (None when no paper did)."""


class HeadTypeInfo(BaseModel):
    """A head type of the vocabulary; ``scored`` when the census measures it (then ``threshold``/``probe`` are set)."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    stage: str | None
    definition: str
    aliases: list[str] = []
    scored: bool
    threshold: float | None = None
    probe: str | None = None


class Paper(BaseModel):
    """A catalogue paper (the catalogue's record plus ``year`` and ``url``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    title: str
    date: str | None = None
    year: int | None = None
    venue: str = ""
    url: str | None = None
    links: dict[str, str] = {}
    head_types: list[str] = []
    stages: list[str] = []
    tags: list[str] = []
    authors: list[str] = []
    summary: dict[str, str] | str | None = None
    reported_heads: list[dict[str, Any]] = []


class AtlasHead(BaseModel):
    scan_id: int
    model: str
    layer: int
    head: int
    score: float | None
    member: bool


class HeadTypeDetail(BaseModel):
    type: HeadTypeInfo
    papers: list[Paper]
    defining: list[str]
    heads: list[AtlasHead]
    n_heads: int
    models: list[str]


class PaperDetail(BaseModel):
    paper: Paper
    matching: dict[str, list[AtlasHead]]
    reported: list[dict[str, Any]]
