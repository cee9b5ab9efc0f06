"""HeadMap: the result of a scan, a tidy table with one row per head x head type."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import fileio
from .errors import InvalidSettingError, UnknownHeadTypeError
from .fileio import loads_json
from .models.facts import ModelFacts

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ScoreField:
    """One column of a head-score row (the rows of a :class:`HeadMap`)."""

    name: str
    kind: type  # int, str, float or bool
    doc: str
    nullable: bool = False  # may be null / an empty CSV cell
    present: bool = True  # always a key of the row (causal columns exist only after ``--verify``)


HEAD_SCORE: tuple[ScoreField, ...] = (
    ScoreField("layer", int, "0-based layer"),
    ScoreField("head", int, "0-based query head within the layer"),
    ScoreField("head_type", str, "head-type id (the vocabulary's)"),
    ScoreField("score", float, "the head type's score of this head; null where it was not computed", nullable=True),
    ScoreField("score_se", float, "standard error of the score over its samples", nullable=True),
    ScoreField("n_samples", int, "items the score averages over"),
    ScoreField("threshold", float, "score at or above which the head counts as a member"),
    ScoreField("member", bool, "score >= threshold"),
    ScoreField("attribution", float, "attribution-patching estimate (with --verify)", nullable=True, present=False),
    ScoreField("ablation_effect", float, "exact single-head ablation effect (with --verify)", nullable=True,
               present=False),
)  # fmt: skip
"""The head-score row, declared once: the CSV columns, the store's ``head_scores`` columns (a test holds the
migrated table to this) and the API's ``HeadScore`` model derive from it. A new field needs a migration adding its
column as well."""

CSV_COLUMNS = tuple(f.name for f in HEAD_SCORE if f.present)
CAUSAL_COLUMNS = tuple(f.name for f in HEAD_SCORE if not f.present)
_FIELDS = {f.name: f for f in HEAD_SCORE}


def head_name(layer: int, head: int) -> str:
    """The field's name for a head: ``L{layer}H{head}``, 0-based."""
    return f"L{layer}H{head}"


def _fmt(value: float | None) -> str:
    """Fixed precision so the same run gives the same bytes; missing is an empty cell, never a sentinel."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6f}"


def _cell(field: ScoreField, value: Any) -> Any:
    if field.kind is float:
        return _fmt(value)
    if field.kind is bool:
        return "true" if value else "false"
    return value


@dataclass
class HeadMap:
    """Scores of every head for every head type of a scan, with the facts needed to read them."""

    facts: ModelFacts
    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    head_types: dict[str, dict[str, Any]]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    verification: dict[str, dict[str, Any]] = field(default_factory=dict)
    stability: dict[str, dict[str, Any]] = field(default_factory=dict)  # per type, over seeds (headatlas.stability)

    # -- views -----------------------------------------------------------------------------------
    def to_pandas(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame(self.rows)
        frame.insert(2, "name", [head_name(r["layer"], r["head"]) for r in self.rows])
        return frame

    def _check(self, head_type: str) -> None:
        if head_type not in self.head_types:
            valid = ", ".join(self.head_types)
            raise UnknownHeadTypeError(f"head type {head_type!r} is not in this scan; it has {valid}")

    def matrix(self, head_type: str) -> np.ndarray:
        """``[layers, heads]`` array of scores (NaN where not computed)."""
        import numpy as np  # here: the paper commands read head maps without numpy

        self._check(head_type)
        out = np.full((self.facts.n_layers, self.facts.n_heads), np.nan)
        for row in self.rows:
            if row["head_type"] == head_type and row["score"] is not None:
                out[row["layer"], row["head"]] = row["score"]
        return out

    def top(self, head_type: str, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` highest-scoring heads of a type, best first (ties broken by layer, head)."""
        self._check(head_type)
        scored = [r for r in self.rows if r["head_type"] == head_type and r["score"] is not None]
        scored.sort(key=lambda r: (-r["score"], r["layer"], r["head"]))
        return [{**r, "name": head_name(r["layer"], r["head"])} for r in scored[:k]]

    def members(self, head_type: str) -> list[str]:
        self._check(head_type)
        return [head_name(r["layer"], r["head"]) for r in self.rows if r["head_type"] == head_type and r["member"]]

    # -- files -----------------------------------------------------------------------------------
    def csv_text(self) -> str:
        causal = [c for c in CAUSAL_COLUMNS if any(c in r for r in self.rows)]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns = [*CSV_COLUMNS, *causal]
        writer.writerow(columns)
        for r in self.rows:
            writer.writerow([_cell(_FIELDS[c], r[c] if _FIELDS[c].present else r.get(c)) for c in columns])
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": "headatlas.headmap/1",
            "model": self.facts.to_dict(),
            "settings": self.settings,
            "head_types": self.head_types,
            "probes": self.probes,
            "verification": self.verification,
            "heads": [{k: _round(v) for k, v in r.items()} for r in self.rows],
        }
        if self.stability:  # only scans run with several seeds carry it
            data["stability"] = self.stability
        return data

    def json_text(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``headmap.csv`` and ``headmap.json`` into ``out_dir`` (created if missing)."""
        out = prepare_out_dir(out_dir)
        csv_path, json_path = out / "headmap.csv", out / "headmap.json"
        write_atomic(csv_path, self.csv_text())
        write_atomic(json_path, self.json_text())
        return csv_path, json_path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadMap:
        """Validate a decoded ``headmap.json``; a malformed one raises :class:`InvalidSettingError` naming the field."""
        model, rows = _validated(data)
        # the JSON sorts keys; the scan's order of head types (kept in settings) is the order reports use
        order = {t: i for i, t in enumerate(data["settings"].get("head_types", []))}

        def scan_order(mapping: dict[str, Any]) -> dict[str, Any]:
            """Order by head type; a probe record by the first head type it serves."""

            def rank(item: tuple[str, Any]) -> int:
                key, value = item
                served = value.get("head_types", []) if isinstance(value, dict) and key not in order else [key]
                return min((order.get(t, len(order)) for t in served), default=len(order))

            return dict(sorted(mapping.items(), key=rank))

        return cls(
            facts=ModelFacts(**model),
            rows=rows,
            settings=data["settings"],
            head_types=scan_order(data["head_types"]),
            probes=scan_order(data.get("probes", {})),
            verification=scan_order(data.get("verification", {})),
            stability=scan_order(data.get("stability", {})),
        )

    @classmethod
    def read(cls, path: str | Path) -> HeadMap:
        """Load a ``headmap.json`` (or the directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "headmap.json"
        try:
            data = loads_json(p.read_bytes())
        except OSError as exc:
            raise InvalidSettingError(f"cannot read {p}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidSettingError(f"{p}: {exc}") from None
        return cls.from_dict(data)


PATTERNS_FORMAT = "headatlas.patterns/1"
PATTERNS_FILE = "patterns.json"
PATTERN_DIGITS = 3  # attention weights in patterns.json are rounded to this many decimals
"""The attention patterns a scan stores beside its head map (captured by :mod:`headatlas.capture`)."""


def check_out_dir(out_dir: str | Path) -> Path:
    """Refuse an output path that is a file or that could not be created/written; creates nothing."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidSettingError(f"--out {out} is a file, not a directory")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidSettingError(f"output directory {out} cannot be written ({existing} is not a writable directory)")
    try:  # access() says yes for root and for /proc: only creating something there proves it
        os.rmdir(tempfile.mkdtemp(prefix=".headatlas-probe-", dir=existing))
    except OSError as exc:
        raise InvalidSettingError(f"output directory {out} cannot be created in {existing}: {exc.strerror}") from None
    return out


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Check ``out_dir`` and create it."""
    out = check_out_dir(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidSettingError(f"cannot create output directory {out}: {exc.strerror}") from None
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write via an exclusive temporary file and rename (:func:`headatlas.fileio.write_atomic`)."""
    try:
        fileio.write_atomic(path, text)
    except OSError as exc:
        raise InvalidSettingError(f"cannot write {path}: {exc.strerror or exc}") from None


MAX_LAYERS = 1024
MAX_HEADS = 1024


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidSettingError(f"headmap.json: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _validated(data: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The model facts and rows of a decoded head map, every field checked before anything allocates by them."""
    _check(isinstance(data, dict), "must be a JSON object")
    model = data.get("model")
    _check(isinstance(model, dict), "field 'model' must be an object")
    known = set(ModelFacts.__dataclass_fields__)
    unknown = sorted(set(model) - known)
    _check(not unknown, f"model has unknown fields {unknown}")
    for name in ("n_layers", "n_heads"):
        value = model.get(name)
        limit = MAX_LAYERS if name == "n_layers" else MAX_HEADS
        _check(_is_int(value) and 1 <= value <= limit, f"model.{name} must be an integer 1..{limit}, got {value!r}")
    for name in ("n_kv_heads", "head_dim", "d_model", "vocab_size"):
        _check(_is_int(model.get(name)) and model[name] >= 0, f"model.{name} must be a non-negative integer")
    for name in ("name", "source", "architecture"):
        _check(isinstance(model.get(name), str), f"model.{name} must be text")
    sliding = model.get("sliding_layers", [])
    _check(isinstance(sliding, list) and all(_is_int(i) for i in sliding), "model.sliding_layers must be integers")
    model = {**model, "sliding_layers": tuple(sliding)}
    for key in ("settings", "head_types"):
        _check(isinstance(data.get(key), dict), f"field {key!r} must be an object")
    for key in ("probes", "verification", "stability"):
        _check(isinstance(data.get(key, {}), dict), f"field {key!r} must be an object")
    heads = data.get("heads")
    _check(isinstance(heads, list), "field 'heads' must be a list")
    n_layers, n_heads = model["n_layers"], model["n_heads"]
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(heads):
        where = f"heads[{i}]"
        _check(isinstance(row, dict), f"{where} must be an object")
        for name, top in (("layer", n_layers), ("head", n_heads)):
            value = row.get(name)
            _check(_is_int(value) and 0 <= value < top, f"{where}.{name} must be an integer 0..{top - 1}")
        _check(row.get("head_type") in data["head_types"], f"{where}.head_type {row.get('head_type')!r} is unknown")
        for name in (f.name for f in HEAD_SCORE if f.kind is float):
            value = row.get(name)
            required = name == "score"
            _check(
                (value is None and (not required or name in row)) or _is_num(value),
                f"{where}.{name} must be a number or null" + (", and present" if required else ""),
            )
        _check(row.get("n_samples") is None or _is_int(row["n_samples"]), f"{where}.n_samples must be an integer")
        _check(isinstance(row.get("member"), bool), f"{where}.member must be true or false")
        rows.append({"score_se": None, "n_samples": None, "threshold": None, **row})
    return model, rows


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value
