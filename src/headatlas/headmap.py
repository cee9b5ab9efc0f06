"""HeadMap: the result of a scan, a tidy table with one row per head x head type."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidSettingError, UnknownHeadTypeError
from .models.facts import ModelFacts

CSV_COLUMNS = ("layer", "head", "head_type", "score", "score_se", "n_samples", "threshold", "member")
CAUSAL_COLUMNS = ("attribution", "ablation_effect")


def head_name(layer: int, head: int) -> str:
    """The field's name for a head: ``L{layer}H{head}``, 0-based."""
    return f"L{layer}H{head}"


def _fmt(value: float | None) -> str:
    """Fixed precision so the same run gives the same bytes; missing is an empty cell, never a sentinel."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6f}"


@dataclass
class HeadMap:
    """Scores of every head for every head type of a scan, with the facts needed to read them."""

    facts: ModelFacts
    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    head_types: dict[str, dict[str, Any]]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    verification: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        writer.writerow([*CSV_COLUMNS, *causal])
        for r in self.rows:
            writer.writerow(
                [
                    r["layer"],
                    r["head"],
                    r["head_type"],
                    _fmt(r["score"]),
                    _fmt(r["score_se"]),
                    r["n_samples"],
                    _fmt(r["threshold"]),
                    "true" if r["member"] else "false",
                    *[_fmt(r.get(c)) for c in causal],
                ]
            )
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "headatlas.headmap/1",
            "model": self.facts.to_dict(),
            "settings": self.settings,
            "head_types": self.head_types,
            "probes": self.probes,
            "verification": self.verification,
            "heads": [{k: _round(v) for k, v in r.items()} for r in self.rows],
        }

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
        model = dict(data["model"])
        model["sliding_layers"] = tuple(model["sliding_layers"])
        return cls(
            facts=ModelFacts(**model),
            rows=[dict(r) for r in data["heads"]],
            settings=data["settings"],
            head_types=data["head_types"],
            probes=data.get("probes", {}),
            verification=data.get("verification", {}),
        )

    @classmethod
    def read(cls, path: str | Path) -> HeadMap:
        """Load a ``headmap.json`` (or the directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "headmap.json"
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))


PATTERNS_FORMAT = "headatlas.patterns/1"
PATTERNS_FILE = "patterns.json"
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
    return out


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Check ``out_dir`` and create it."""
    out = check_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value
