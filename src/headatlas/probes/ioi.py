"""Indirect object identification prompts (Interpretability in the Wild, Wang et al. 2023).

A clean prompt names two people, then repeats one of them (the subject S) as the giver:
"When Mary and John went to the store, John gave a drink to" -> " Mary" (the indirect object IO).
Both orders are used (ABBA: IO first; BABA: S first). Its corrupted "ABC" twin replaces the second S
by a third name C, so no name is repeated and nothing tells IO from S. The metric is the logit
difference ``logit(IO) - logit(S)`` at the last position.

Prompts are built from token pieces (the template's text pieces and one token per name), so every
prompt of a template has the same token length and the IO, S1, S2 and end positions are known exactly.
Names are used only when they are one token in this tokenizer, in the form the prompts use: space-
prefixed (" Mary", the natural form inside a sentence) or, when that keeps fewer names (byte-level
toy tokenizers), bare after a text piece that ends in a space. Dropped names are counted; fewer than
:data:`MIN_NAMES` left is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import InvalidSettingError, TaskUnavailable
from .base import ProbeBatch, ProbeSettings, bos_id, generator

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")

PROBE_ID = "ioi"
MIN_NAMES = 4
DEFAULT_PROMPTS = 16

TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the store, {C} gave a drink to",
    "When {A} and {B} went to the park, {C} gave a ball to",
    "After {A} and {B} went to the restaurant, {C} gave a ring to",
    "Then, {A} and {B} had a long argument. Afterwards {C} said to",
    "While {A} and {B} were working at the office, {C} handed the report to",
    "Friends {A} and {B} found a necklace at the beach. {C} gave it to",
    "When {A} and {B} got a snack at the cafe, {C} decided to give it to",
    "After the lunch, {A} and {B} went to the garden. {C} gave a flower to",
)
"""``{A}``/``{B}``: the two names introduced; ``{C}``: the giver (S in clean prompts, a third name in ABC)."""

_SLOT = re.compile(r"\{([ABC])\}")


@lru_cache(maxsize=1)
def default_names() -> tuple[str, ...]:
    text = resources.files("headatlas.probes").joinpath("data/ioi_names.txt").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    return tuple(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


@dataclass(frozen=True)
class NameSet:
    """The names usable as single tokens, in the form (``space`` or ``bare``) the prompts use."""

    form: str
    names: tuple[str, ...]
    ids: tuple[int, ...]
    dropped: int


def _name_text(name: str, form: str) -> str:
    return f" {name}" if form == "space" else name


def name_set(tokenizer: Any, names: tuple[str, ...] | None = None, minimum: int = MIN_NAMES) -> NameSet:
    """Keep the names that are one token; the form that keeps more wins (space-prefixed on a tie)."""
    names = tuple(dict.fromkeys(names if names is not None else default_names()))
    best: NameSet | None = None
    for form in ("space", "bare"):
        kept = [(n, tokenizer.encode(_name_text(n, form), add_special_tokens=False)) for n in names]
        single = [(n, int(ids[0])) for n, ids in kept if len(ids) == 1]
        unique = list({i: n for n, i in reversed(single)}.items())[::-1]  # one name per token id
        candidate = NameSet(form, tuple(n for _, n in unique), tuple(i for i, _ in unique), len(names) - len(unique))
        if best is None or len(candidate.names) > len(best.names):
            best = candidate
    assert best is not None
    if len(best.names) < minimum:
        raise TaskUnavailable(
            f"IOI needs at least {minimum} names that are one token in this tokenizer; {len(best.names)} of"
            f" {len(names)} are ({best.dropped} dropped as multi-token)"
        )
    return best


@dataclass
class IOIGroup:
    """Prompts of one template: clean and ABC ids ``[B, T]`` and the positions that matter."""

    template: int
    clean: torch.Tensor
    corrupt: torch.Tensor
    io: torch.Tensor  # [B] token id of the indirect object (the answer)
    s: torch.Tensor  # [B] token id of the subject
    io_pos: torch.Tensor  # [B] position of IO in the prompt
    s1_pos: torch.Tensor  # [B] first mention of S
    s2_pos: torch.Tensor  # [B] second mention of S (the giver)


@dataclass
class IOISet:
    groups: list[IOIGroup]
    names: NameSet
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return sum(int(g.clean.shape[0]) for g in self.groups)


def _pieces(tokenizer: Any, template: str, form: str) -> list[list[int] | str]:
    """Template as token pieces: a list of ids for text, the slot letter for a name."""
    out: list[list[int] | str] = []
    parts = _SLOT.split(template)  # text, slot, text, slot, ...
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
            continue
        text = part
        if form == "space" and i + 1 < len(parts):
            text = text.rstrip(" ")  # the name brings its own leading space
        if form == "bare" and i == len(parts) - 1:
            text = text + " "  # the answer name follows the prompt bare, after a space
        if text:
            out.append([int(t) for t in tokenizer.encode(text, add_special_tokens=False)])
    return out


def build(
    tokenizer: Any, n_prompts: int = DEFAULT_PROMPTS, seed: int = 0, names: tuple[str, ...] | None = None
) -> IOISet:
    """``n_prompts`` clean/ABC prompt pairs spread over the templates (deterministic in ``seed``)."""
    if not isinstance(n_prompts, int) or n_prompts < 1:
        raise InvalidSettingError(f"n_prompts must be a positive integer, got {n_prompts!r}")
    pool = name_set(tokenizer, names)
    gen = generator(seed, salt=7)
    bos = bos_id(tokenizer)
    n_templates = min(len(TEMPLATES), n_prompts)
    groups = []
    for t in range(n_templates):
        count = n_prompts // n_templates + (1 if t < n_prompts % n_templates else 0)
        pieces = _pieces(tokenizer, TEMPLATES[t], pool.form)
        rows: dict[str, list[Any]] = {k: [] for k in ("clean", "corrupt", "io", "s", "io_pos", "s1_pos", "s2_pos")}
        for k in range(count):
            a, b, c = (int(i) for i in torch.randperm(len(pool.ids), generator=gen)[:3])
            io, s, third = pool.ids[a], pool.ids[b], pool.ids[c]
            first, second = (io, s) if k % 2 == 0 else (s, io)  # ABBA, then BABA
            clean, corrupt, where = [bos], [bos], {}
            for piece in pieces:
                if isinstance(piece, list):
                    clean += piece
                    corrupt += piece
                    continue
                where[piece] = len(clean)
                clean.append({"A": first, "B": second, "C": s}[piece])
                corrupt.append({"A": first, "B": second, "C": third}[piece])
            rows["clean"].append(clean)
            rows["corrupt"].append(corrupt)
            rows["io"].append(io)
            rows["s"].append(s)
            rows["io_pos"].append(where["A"] if first == io else where["B"])
            rows["s1_pos"].append(where["B"] if first == io else where["A"])
            rows["s2_pos"].append(where["C"])
        groups.append(
            IOIGroup(
                template=t,
                clean=torch.tensor(rows["clean"]),
                corrupt=torch.tensor(rows["corrupt"]),
                **{k: torch.tensor(rows[k]) for k in ("io", "s", "io_pos", "s1_pos", "s2_pos")},
            )
        )
    info = {
        "n_prompts": n_prompts,
        "n_templates": n_templates,
        "name_form": pool.form,
        "names_kept": len(pool.names),
        "names_dropped": pool.dropped,
    }
    return IOISet(groups=groups, names=pool, info=info)


def generate(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Clean IOI prompts as probe batches (for causal metrics): ``answer`` = IO, ``wrong`` = S, one batch a template."""
    batches = []
    for g in build(tokenizer, DEFAULT_PROMPTS, seed).groups:
        length = g.clean.shape[1]
        batches.append(
            ProbeBatch(
                input_ids=g.clean,
                attention_mask=torch.ones_like(g.clean),
                rows=torch.full((g.clean.shape[0], 1), length - 1),
                extras={"answer": g.io, "wrong": g.s, "io_pos": g.io_pos, "s1_pos": g.s1_pos, "s2_pos": g.s2_pos},
            )
        )
    return batches
