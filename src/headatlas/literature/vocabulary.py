"""The head-type vocabulary: one id per kind of head, whatever the list or a paper calls it.

The seed list tags papers with free-form badge names (``S_Inhibition_Head``, ``S--Inhibition_Head``,
``Previous_Head``, ``Previous_Token_Head`` …). Each :class:`HeadTerm` has a snake_case id, a stage of the survey
(Attention Heads of Large Language Models: A Survey, arXiv 2409.03752), a definition, aliases and the ids of its
defining papers. :func:`normalise_name` reduces any spelling to a key, so aliases match whatever their case,
separators (``_``, ``-``, ``--``, spaces) or a trailing "head(s)". The census registry's ids
(``headatlas.heads.head_types()``) are all terms here, so a scan's head types resolve to catalogue entries.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import CatalogueError, UnknownHeadNameError
from .schema import STAGES

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def normalise_name(name: str) -> str:
    """Matching key of a head name: lower-case alphanumerics, without a trailing ``head``/``heads``.

    ``"S--Inhibition_Head"``, ``"S_Inhibition_Head"`` and ``"S-inhibition head"`` all give ``"sinhibition"``.
    """
    key = "".join(re.findall(r"[a-z0-9]+", name.lower()))
    for suffix in ("heads", "head"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
            break
    return key


def display_tag(tag: str) -> str:
    """A badge name as people read it: shields.io escapes (``_`` space, ``--`` dash) undone."""
    return tag.replace("--", "\x00").replace("_", " ").replace("-", " ").replace("\x00", "-").strip()


@dataclass(frozen=True)
class HeadTerm:
    """One head type of the catalogue vocabulary."""

    id: str
    name: str
    stage: str
    definition: str
    aliases: tuple[str, ...] = ()
    papers: tuple[str, ...] = ()
    in_survey: bool = False  # listed in the survey's taxonomy table (else stage assigned by the maintainers)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise CatalogueError(f"head type id must be snake_case, got {self.id!r}")
        if self.stage not in STAGES:
            raise CatalogueError(f"head type {self.id!r}: stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if not self.name.strip() or not self.definition.strip():
            raise CatalogueError(f"head type {self.id!r}: name and definition must not be empty")

    def match_keys(self) -> set[str]:
        return {normalise_name(n) for n in (self.id, self.name, *self.aliases)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "stage": self.stage,
            "in_survey": self.in_survey,
            "definition": self.definition,
            "aliases": list(self.aliases),
            "papers": list(self.papers),
        }

    @classmethod
    def from_dict(cls, data: Any) -> HeadTerm:
        if not isinstance(data, Mapping):
            raise CatalogueError("a head-type entry must be a mapping")
        for key in ("aliases", "papers"):
            values = data.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                # e.g. an unquoted arXiv id that YAML read as a float (2408.08590 -> 2408.0859)
                raise CatalogueError(f"head-type entry {data.get('id')!r}: field '{key}' must be a list of strings")
        try:
            return cls(
                id=str(data["id"]),
                name=str(data["name"]),
                stage=str(data["stage"]),
                definition=str(data["definition"]),
                aliases=tuple(str(a) for a in data.get("aliases") or ()),
                papers=tuple(str(p) for p in data.get("papers") or ()),
                in_survey=bool(data.get("in_survey", False)),
            )
        except KeyError as exc:
            raise CatalogueError(f"head-type entry {data.get('id')!r}: field {exc.args[0]!r} is missing") from None


class Vocabulary:
    """Head terms indexed by id and by every normalised alias; refuses an alias claimed by two ids."""

    def __init__(self, terms: Iterable[HeadTerm]) -> None:
        self.terms: dict[str, HeadTerm] = {}
        self._by_key: dict[str, str] = {}
        for term in terms:
            self.add(term)

    def add(self, term: HeadTerm) -> None:
        if term.id in self.terms:
            raise CatalogueError(f"head type {term.id!r} is defined twice")
        for key in term.match_keys():
            owner = self._by_key.get(key)
            if owner is not None and owner != term.id:
                raise CatalogueError(f"head name {key!r} of {term.id!r} already means {owner!r}")
        self.terms[term.id] = term
        for key in term.match_keys():
            self._by_key[key] = term.id

    def __contains__(self, head_type_id: object) -> bool:
        return head_type_id in self.terms

    def __len__(self) -> int:
        return len(self.terms)

    def get(self, head_type_id: str) -> HeadTerm:
        try:
            return self.terms[head_type_id]
        except KeyError:
            raise UnknownHeadNameError(self._unknown_message(head_type_id)) from None

    def find(self, name: str) -> str | None:
        """The id a head name means, or ``None``."""
        return self._by_key.get(normalise_name(name))

    def resolve(self, name: str) -> str:
        """The id a head name means; :class:`UnknownHeadNameError` listing close matches otherwise."""
        found = self.find(name)
        if found is None:
            raise UnknownHeadNameError(self._unknown_message(name))
        return found

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        key = normalise_name(name)
        keys = difflib.get_close_matches(key, list(self._by_key), n=n * 3, cutoff=0.6)
        ids: list[str] = []
        for k in keys:
            if self._by_key[k] not in ids:
                ids.append(self._by_key[k])
        # substring matches catch "retrieval" for "global retrieval-ish" names difflib scores low
        for k, owner in sorted(self._by_key.items()):
            if key and (key in k or k in key) and owner not in ids and len(k) > 2:
                ids.append(owner)
        return ids[:n]

    def _unknown_message(self, name: str) -> str:
        close = self.close_matches(name)
        hint = f"; close matches: {', '.join(close)}" if close else "; see `headatlas papers heads` for the vocabulary"
        return f"unknown head name {name!r}{hint} (use --new-head to add it as a new head type)"


@functools.cache
def shipped_terms() -> tuple[HeadTerm, ...]:
    """The vocabulary shipped as package data (``data/head_types.yaml``)."""
    text = importlib.resources.files("headatlas.literature").joinpath("data/head_types.yaml").read_text("utf-8")
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 10x faster, same result
    if not isinstance(raw, list):
        raise CatalogueError("data/head_types.yaml must be a list of head types")
    return tuple(HeadTerm.from_dict(entry) for entry in raw)


def vocabulary(extra: Iterable[HeadTerm] = ()) -> Vocabulary:
    """The shipped vocabulary plus ``extra`` terms (e.g. head types added to a store with ``--new-head``)."""
    shipped = shipped_terms()
    ids = {t.id for t in shipped}
    return Vocabulary([*shipped, *(t for t in extra if t.id not in ids)])


def new_term(name: str, stage: str = "ICI") -> HeadTerm:
    """A head type for a name the vocabulary does not know yet (``papers add --new-head``)."""
    key = "_".join(re.findall(r"[a-z0-9]+", display_tag(name).lower()))
    if key.endswith("_heads"):
        key = key[: -len("_heads")]
    elif key.endswith("_head"):
        key = key[: -len("_head")]
    if not key or not key[0].isalpha():
        raise CatalogueError(f"cannot derive a head-type id from {name!r}")
    return HeadTerm(
        id=key,
        name=display_tag(name),
        stage=stage,
        definition=f"Added from a contribution naming {display_tag(name)!r}; definition to be written.",
        aliases=(name,),
    )
