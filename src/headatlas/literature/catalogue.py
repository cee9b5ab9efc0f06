"""The shipped paper catalogue (``data/papers.yaml``) and the canonical file format shared by import/export.

The YAML file is the one reviewable source of truth: entries sorted newest first (date, then id), keys in a fixed
order, written by :func:`dump_yaml` so that ``dump_yaml(load(text)) == text`` (a test holds the shipped file to
that). ``papers export --format json`` writes the same records as JSON; ``papers import`` reads either.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml

from ..errors import CatalogueError
from ..fileio import loads_json
from .identity import title_key
from .schema import Paper
from .vocabulary import HeadTerm, Vocabulary, vocabulary

FORMAT_VERSION = 1


def sort_papers(papers: Iterable[Paper]) -> list[Paper]:
    """Newest first; ties by id, so the order never depends on input order."""
    return sorted(papers, key=lambda p: (-p.date.toordinal(), p.id))


@dataclass(frozen=True)
class Catalogue:
    """An immutable, validated set of papers with unique ids and unique normalised titles."""

    papers: tuple[Paper, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        titles: dict[str, str] = {}
        for p in self.papers:
            if p.id in seen:
                raise CatalogueError(f"duplicate paper id {p.id!r}")
            seen[p.id] = p.title
            key = title_key(p.title)
            if key in titles:
                raise CatalogueError(f"papers {titles[key]!r} and {p.id!r} have the same title")
            titles[key] = p.id

    def __len__(self) -> int:
        return len(self.papers)

    def get(self, paper_id: str) -> Paper:
        for p in self.papers:
            if p.id == paper_id:
                return p
        raise CatalogueError(f"no paper with id {paper_id!r}")

    def papers_for_head_type(self, head_type_id: str, vocab: Vocabulary | None = None) -> list[Paper]:
        """Papers about ``head_type_id``: those tagged with it plus its defining papers, newest first (ties by id),
        as :func:`headatlas.literature.store.papers_for_head_type` gives them from a store. An id the vocabulary
        does not know raises :class:`~headatlas.errors.UnknownHeadNameError` with close matches."""
        term = (vocab or vocabulary()).get(head_type_id)
        return sort_papers(p for p in self.papers if head_type_id in p.head_types or p.id in term.papers)

    def check_vocabulary(self, vocab: Vocabulary | None = None) -> None:
        """Every head type and tag of every paper must be in the vocabulary, and tags must map to head types."""
        vocab = vocab or vocabulary()
        for p in self.papers:
            for ht in p.head_types:
                if ht not in vocab:
                    raise CatalogueError(f"paper {p.id!r}: head type {ht!r} is not in the vocabulary")
            for tag in p.tags:
                resolved = vocab.resolve(tag)
                if resolved not in p.head_types:
                    raise CatalogueError(f"paper {p.id!r}: tag {tag!r} means {resolved!r}, missing from head_types")


def parse_document(raw: Any, *, today: date | None = None) -> tuple[list[Paper], list[HeadTerm]]:
    """Validate decoded YAML/JSON: a list of paper dicts, or ``{"format": 1, "head_types": [...], "papers": [...]}``
    where ``head_types`` (optional) are head types the papers use beyond the shipped vocabulary."""
    terms: list[HeadTerm] = []
    if isinstance(raw, dict) and "papers" in raw:
        version = raw.get("format", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise CatalogueError(f"unsupported catalogue format {version!r}; this version reads {FORMAT_VERSION}")
        extra = raw.get("head_types") or []
        if not isinstance(extra, list):
            raise CatalogueError("field 'head_types' of a catalogue file must be a list")
        terms = [HeadTerm.from_dict(t) for t in extra]
        raw = raw["papers"]
    if not isinstance(raw, list):
        raise CatalogueError("a catalogue file must hold a list of papers")
    return [Paper.from_dict(entry, today=today) for entry in raw], terms


def parse_records(raw: Any, *, today: date | None = None) -> list[Paper]:
    return parse_document(raw, today=today)[0]


def loads(text: str, *, today: date | None = None) -> list[Paper]:
    """Parse catalogue text, JSON or YAML (JSON is tried first); errors are :class:`CatalogueError`."""
    return load_document(text, today=today)[0]


def load_document(text: str, *, today: date | None = None) -> tuple[list[Paper], list[HeadTerm]]:
    """Papers and extra head types of catalogue text (JSON or YAML, as written by :func:`dump_json`)."""
    stripped = text.lstrip()
    if not stripped:
        raise CatalogueError("the catalogue file is empty")
    if stripped[0] in "[{":
        try:
            raw = loads_json(text)
        except ValueError as exc:
            raise CatalogueError(str(exc)) from None
    else:
        try:
            raw = yaml.safe_load(text)
        except RecursionError:
            raise CatalogueError("invalid YAML: nested too deeply") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # a reader error spans lines
            raise CatalogueError(f"invalid YAML{where}: {problem}") from None
    return parse_document(raw, today=today)


class _Dumper(yaml.SafeDumper):
    """Block style, long lines kept whole, strings quoted only when YAML needs it."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_yaml(papers: Sequence[Paper], terms: Sequence[HeadTerm] = ()) -> str:
    """Canonical YAML of ``papers`` (sorted newest first); stable byte for byte. A plain list unless ``terms``
    (head types beyond the shipped vocabulary) must travel with them."""
    records: Any = [p.to_dict() for p in sort_papers(papers)]
    if terms:
        records = {"format": FORMAT_VERSION, "head_types": _term_dicts(terms), "papers": records}
    return yaml.dump(records, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000)


def dump_json(papers: Sequence[Paper], terms: Sequence[HeadTerm] = ()) -> str:
    doc: dict[str, Any] = {"format": FORMAT_VERSION}
    if terms:
        doc["head_types"] = _term_dicts(terms)
    doc["papers"] = [p.to_dict() for p in sort_papers(papers)]
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _term_dicts(terms: Sequence[HeadTerm]) -> list[dict[str, Any]]:
    return [t.to_dict() for t in sorted(terms, key=lambda t: t.id)]


def shipped_text() -> str:
    return importlib.resources.files("headatlas.literature").joinpath("data/papers.yaml").read_text("utf-8")


@functools.cache
def load_catalogue() -> Catalogue:
    """The papers shipped with headatlas, validated against the vocabulary (loaded once)."""
    catalogue = Catalogue(tuple(sort_papers(loads(shipped_text()))))
    catalogue.check_vocabulary()
    return catalogue
