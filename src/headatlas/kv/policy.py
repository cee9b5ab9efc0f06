"""A head-aware KV-cache policy planned from a stored scan (``headmap.json``), without training.

Each (layer, KV head) either keeps its full cache or only ``sink`` first + ``recent`` last tokens.
Three rules rank the heads (GQA/MQA: a KV head scores the maximum of its query heads, so it stays full
when any query head reading it needs the context):

* ``retrieval`` — the retrieval-head score (Wu et al., "Retrieval Head Mechanistically Explains
  Long-Context Factuality"), ranked as DuoAttention ranks its learned gates: the top heads keep the cache.
* ``razor`` — RazorAttention's rule: induction heads and "echo" heads (our ``duplicate_token``) keep the
  cache. Each query head scores ``max(induction / its threshold, duplicate_token / its threshold)``, so
  scan members (score >= 1) come first and the budget decides how deep below threshold to go.
* ``headkv`` — HeadKV's allocation: every head gets the streaming window, the rest of the budget is
  shared in proportion to a retrieval-reasoning score (``retrieval + induction``); a head whose share
  reaches the context is full. Kept tokens are still sink + recent (HeadKV selects them SnapKV-style).

``compensation`` (razor rule only): RazorAttention's compensation token. A streaming head also keeps the
mean key and mean value of the tokens it dropped, attended as if it were all of them (its score counts
``n_dropped`` times); one more entry per streaming head.

How the ranking rules spend the budget (``fill``): the top heads keep the full cache, as many as the budget
holds rounded to the nearest head; ``remainder`` (default) gives what rounding left over to the next head as a
longer recent window, so the policy holds its budget even when few KV heads decide it (Gemma 3 270M: three
global KV heads, where whole heads alone hold 0.38 or 0.69 of them; HeadKV's point that a budget need not be
all-or-nothing per head). ``whole`` (the first version): the rounded number of whole heads only.

Layers the model already restricts to a sliding window (Gemma 3: ``model.sliding_layers`` of the scan) are
streaming heads whose window the model fixed (DuoAttention's streaming heads; RazorAttention's
non-retrieval heads). ``scope`` says what the budget is a fraction of:

* ``cache`` (default): the bytes the model's full cache really holds, local layers at their window. Local
  layers hold a plain window of ``sink + recent`` tokens (no more than the model's window; no sink, since the
  model's local attention never reads one), all alike (transformers builds one mask for every sliding
  layer); the global heads share what is left. Spending a global head's full cache is worth more than a
  local layer's last few hundred tokens, which its own window drops anyway.
* ``global`` (the first version): the global layers only; local layers keep their own window, outside the
  budget.

Without sliding layers the two scopes are the same. Only the file format of a scan is read
(``headatlas.headmap/1``), never the scan's code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import InvalidSettingError
from ..fileio import write_atomic

Rule = Literal["retrieval", "razor", "headkv"]
RULES: tuple[str, ...] = get_args(Rule)
DEFAULT_RULE = "retrieval"
"""The rule ``headatlas kv plan`` uses unless told otherwise (and the one ``bench kv`` reports first)."""
SCOPES = ("cache", "global")
FILLS = ("remainder", "whole")
POLICY_FORMAT = "headatlas.kvpolicy/1"
HEADMAP_FORMAT = "headatlas.headmap/1"
NEEDS: dict[str, tuple[str, ...]] = {
    "retrieval": ("retrieval",),
    "razor": ("induction", "duplicate_token"),
    "headkv": ("retrieval", "induction"),
}


@dataclass(frozen=True)
class HeadPolicy:
    """One KV head: full cache (``recent is None``) or ``sink`` + ``recent`` tokens."""

    layer: int
    kv_head: int
    query_heads: tuple[int, ...]
    score: float
    sink: int = 0
    recent: int | None = None
    sliding: bool = False  # a sliding-window layer of the model: its window, or (scope cache) sink + recent

    @property
    def full(self) -> bool:
        return self.recent is None

    def held(self, length: int, compensation: bool = False) -> int:
        """Tokens this head holds after ``length`` tokens (plus the compensation token once it drops any)."""
        if self.recent is None:
            return length
        window = self.sink + self.recent
        return min(length, window) + (1 if compensation and length > window else 0)


@dataclass(frozen=True)
class KVPolicy:
    """A per-(layer, KV head) cache policy and where it came from."""

    rule: str
    budget: float
    context: int
    sink: int
    recent: int
    model: Mapping[str, Any]
    heads: tuple[HeadPolicy, ...]
    scan: Mapping[str, Any] = field(default_factory=dict)
    compensation: bool = False
    scope: str = "global"  # what the budget is a fraction of: "cache" (every layer) or "global" (global layers)
    fill: str = "whole"  # ranking rules: "remainder" (the next head gets what is left) or "whole" heads only

    @property
    def planned(self) -> tuple[HeadPolicy, ...]:
        """The heads the rule ranks (global layers)."""
        return tuple(h for h in self.heads if not h.sliding)

    @property
    def sliding_window(self) -> int | None:
        """The model's own window on its sliding-window layers (None: no such layers)."""
        value = self.model.get("sliding_window")
        return int(value) if value else None

    @property
    def local_window(self) -> int | None:
        """The window the policy gives the sliding-window layers (None: the model's own)."""
        windows = {h.sink + h.recent for h in self.heads if h.sliding and h.recent is not None}
        return min(windows) if windows else None

    def _counted(self) -> tuple[HeadPolicy, ...]:
        return self.heads if self.scope == "cache" else self.planned

    def _cap(self, h: HeadPolicy, length: int) -> int:
        """Tokens the model's own full cache holds for this head after ``length`` tokens."""
        window = self.sliding_window
        return min(length, window) if h.sliding and window else length

    def _held(self, h: HeadPolicy, length: int) -> int:
        if h.sliding:
            return min(self._cap(h, length), h.held(length))
        return h.held(length, self.compensation)

    @property
    def n_layers(self) -> int:
        return int(self.model["n_layers"])

    @property
    def n_kv_heads(self) -> int:
        return int(self.model["n_kv_heads"])

    def head(self, layer: int, kv_head: int) -> HeadPolicy:
        return self.heads[layer * self.n_kv_heads + kv_head]

    def layer(self, layer: int) -> tuple[HeadPolicy, ...]:
        return self.heads[layer * self.n_kv_heads : (layer + 1) * self.n_kv_heads]

    def kv_fraction(self, length: int | None = None) -> float:
        """Fraction of the full cache held after ``length`` tokens (default: the planning context)."""
        n = self.context if length is None else length
        heads = self._counted()
        return sum(self._held(h, n) for h in heads) / sum(self._cap(h, n) for h in heads)

    @property
    def full_fraction(self) -> float:
        """Fraction of the planned (global-layer) KV heads that keep the full cache."""
        heads = self.planned
        return sum(h.full for h in heads) / len(heads)

    def to_json(self) -> dict[str, Any]:
        heads = []
        for h in self.heads:
            row = asdict(h)
            row["query_heads"] = list(h.query_heads)
            row["full"] = h.full
            heads.append(row)
        return {
            "format": POLICY_FORMAT,
            "rule": self.rule,
            "budget": self.budget,
            "context": self.context,
            "sink": self.sink,
            "recent": self.recent,
            "compensation": self.compensation,
            "scope": self.scope,
            "fill": self.fill,
            "kv_fraction": round(self.kv_fraction(), 6),
            "full_fraction": round(self.full_fraction, 6),
            "model": dict(self.model),
            "scan": dict(self.scan),
            "heads": heads,
        }

    def save(self, path: Path) -> None:
        """Write the policy JSON atomically (an exclusive temporary file, then a rename)."""
        write_atomic(path, json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KVPolicy:
        if data.get("format") != POLICY_FORMAT:
            raise InvalidSettingError(f"not a KV policy: format {data.get('format')!r}, expected {POLICY_FORMAT!r}")
        heads = tuple(
            HeadPolicy(
                layer=int(h["layer"]),
                kv_head=int(h["kv_head"]),
                query_heads=tuple(int(q) for q in h["query_heads"]),
                score=float(h["score"]),
                sink=int(h["sink"]),
                recent=None if h["recent"] is None else int(h["recent"]),
                sliding=bool(h.get("sliding", False)),
            )
            for h in data["heads"]
        )
        return cls(
            rule=str(data["rule"]),
            budget=float(data["budget"]),
            context=int(data["context"]),
            sink=int(data["sink"]),
            recent=int(data["recent"]),
            model=dict(data["model"]),
            heads=heads,
            scan=dict(data.get("scan", {})),
            compensation=bool(data.get("compensation", False)),
            scope=str(data.get("scope", "global")),
            fill=str(data.get("fill", "whole")),
        )

    @classmethod
    def load(cls, path: Path) -> KVPolicy:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidSettingError(f"cannot read KV policy {path}: {exc}") from exc
        return cls.from_json(data)

    def check_model(self, config: Any) -> None:
        """Refuse a model whose layer / head counts differ from the scanned one."""
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        got = {
            "n_layers": text.num_hidden_layers,
            "n_heads": text.num_attention_heads,
            "n_kv_heads": getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
        }
        want = {k: int(self.model[k]) for k in got}
        if got != want:
            raise InvalidSettingError(
                f"model does not match the scan of {self.model.get('name')!r}: model has {got}, policy has {want}"
            )


def read_headmap(scan_dir: Path) -> dict[str, Any]:
    """``scan_dir/headmap.json`` (or the file itself), checked for the fields a policy needs."""
    path = Path(scan_dir)
    if path.is_dir():
        path = path / "headmap.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidSettingError(f"no scan at {scan_dir}: {path} does not exist") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidSettingError(f"cannot read scan {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != HEADMAP_FORMAT:
        raise InvalidSettingError(f"{path} is not a headatlas scan (format {HEADMAP_FORMAT!r})")
    for key in ("n_layers", "n_heads", "n_kv_heads"):
        if not isinstance(data.get("model", {}).get(key), int):
            raise InvalidSettingError(f"{path}: model.{key} missing")
    return data


def score_table(headmap: Mapping[str, Any], head_type: str) -> list[list[float]]:
    """``[layer][query head]`` scores of one head type; every head must be scored."""
    model = headmap["model"]
    n_layers, n_heads = int(model["n_layers"]), int(model["n_heads"])
    table: list[list[float | None]] = [[None] * n_heads for _ in range(n_layers)]
    for row in headmap.get("heads", []):
        if row.get("head_type") == head_type and row.get("score") is not None:
            table[int(row["layer"])][int(row["head"])] = float(row["score"])
    missing = sum(s is None for layer in table for s in layer)
    if missing:
        raise InvalidSettingError(f"the scan has no {head_type!r} score for {missing} of {n_layers * n_heads} heads")
    return [[float(s) for s in layer if s is not None] for layer in table]


def threshold_of(headmap: Mapping[str, Any], head_type: str) -> float:
    info = headmap.get("head_types", {}).get(head_type, {})
    value = info.get("threshold")
    if value is None:
        values = [r["threshold"] for r in headmap.get("heads", []) if r.get("head_type") == head_type]
        value = values[0] if values else 1.0
    return float(value) if float(value) > 0 else 1.0


def query_head_scores(headmap: Mapping[str, Any], rule: str) -> list[list[float]]:
    """The rule's score for every query head, ``[layer][head]``."""
    present = {r.get("head_type") for r in headmap.get("heads", [])}
    lacking = [t for t in NEEDS[rule] if t not in present]
    if lacking:
        raise InvalidSettingError(
            f"rule {rule!r} needs head types {', '.join(NEEDS[rule])}; the scan lacks {', '.join(lacking)}"
        )
    if rule == "retrieval":
        return score_table(headmap, "retrieval")
    if rule == "razor":
        ind, dup = score_table(headmap, "induction"), score_table(headmap, "duplicate_token")
        t_ind, t_dup = threshold_of(headmap, "induction"), threshold_of(headmap, "duplicate_token")
        return [
            [max(i / t_ind, d / t_dup) for i, d in zip(li, ld, strict=True)] for li, ld in zip(ind, dup, strict=True)
        ]
    ret, ind = score_table(headmap, "retrieval"), score_table(headmap, "induction")
    return [[max(r, 0.0) + max(i, 0.0) for r, i in zip(lr, li, strict=True)] for lr, li in zip(ret, ind, strict=True)]


def default_window(context: int) -> tuple[int, int]:
    """Sink and recent sizes for a context: 1/16 of it, a quarter sink (DuoAttention's 128 + 256 at 6k)."""
    window = max(8, context // 16)
    sink = max(4, window // 4)
    return sink, window - sink


def plan(
    headmap: Mapping[str, Any],
    *,
    rule: str = DEFAULT_RULE,
    budget: float = 0.5,
    context: int = 2048,
    sink: int | None = None,
    recent: int | None = None,
    scan: Mapping[str, Any] | None = None,
    compensation: bool = False,
    scope: str = "cache",
    fill: str = "remainder",
) -> KVPolicy:
    """Plan a policy holding ``budget`` of the full cache at ``context`` tokens (``scope``: see the module)."""
    if rule not in RULES:
        raise InvalidSettingError(f"unknown rule {rule!r}; valid rules are {', '.join(RULES)}")
    if scope not in SCOPES:
        raise InvalidSettingError(f"unknown scope {scope!r}; valid scopes are {', '.join(SCOPES)}")
    if fill not in FILLS:
        raise InvalidSettingError(f"unknown fill {fill!r}; valid fills are {', '.join(FILLS)}")
    if compensation and rule != "razor":
        raise InvalidSettingError(f"the compensation token is RazorAttention's: use it with rule 'razor', not {rule!r}")
    if not (isinstance(budget, (int, float)) and 0 < budget <= 1) or math.isnan(budget):
        raise InvalidSettingError(f"budget must lie in (0, 1], got {budget}")
    if context < 2:
        raise InvalidSettingError(f"context must be at least 2 tokens, got {context}")
    d_sink, d_recent = default_window(context)
    sink = d_sink if sink is None else sink
    recent = d_recent if recent is None else recent
    if sink < 0 or recent < 1:
        raise InvalidSettingError(f"sink must be >= 0 and recent >= 1, got sink={sink} recent={recent}")
    window = sink + recent + (1 if compensation else 0)  # entries a streaming head holds
    if budget < 1 and window >= budget * context:
        raise InvalidSettingError(
            f"budget {budget} of {context} tokens is {budget * context:.0f} per head, not more than the streaming "
            f"window sink + recent = {window}; raise --budget or --context, or lower --sink/--recent"
        )
    model = headmap["model"]
    n_layers, n_heads, n_kv = int(model["n_layers"]), int(model["n_heads"]), int(model["n_kv_heads"])
    if n_heads % n_kv:
        raise InvalidSettingError(f"{n_heads} query heads do not divide over {n_kv} KV heads")
    group = n_heads // n_kv
    sliding = {int(x) for x in model.get("sliding_layers") or []}
    if len(sliding) >= n_layers:
        raise InvalidSettingError("every layer of the scanned model is a sliding-window layer: nothing to plan")
    q_scores = query_head_scores(headmap, rule)
    kv_scores = [[max(q_scores[layer][k * group : (k + 1) * group]) for k in range(n_kv)] for layer in range(n_layers)]
    flat = [(kv_scores[la][k], la, k) for la in range(n_layers) if la not in sliding for k in range(n_kv)]
    total = len(flat)
    model_window = int(model.get("sliding_window") or 0) or None
    local: int | None = None  # the window the sliding layers get (None: their own)
    pool = budget * context * total  # tokens x heads the global heads may hold
    if scope == "cache" and sliding and model_window and budget < 1:
        local, pool = _local_window(budget, context, min(context, model_window), len(sliding) * n_kv, total, window)
        if local < recent:
            raise InvalidSettingError(
                f"budget {budget} of the cache at {context} tokens leaves the sliding-window layers {local} tokens, "
                f"fewer than recent = {recent}; raise --budget or --context, or lower --sink/--recent"
            )
    held = [float(window)] * total  # per KV head, in flat order
    order = sorted(range(total), key=lambda i: (-flat[i][0], flat[i][1], flat[i][2]))
    if budget >= 1 or window >= context:
        held = [float(context)] * total
    elif rule == "headkv":
        held = _share(flat, pool, float(window), float(context))
    else:
        n_full = min(total, round((pool - window * total) / (context - window)))
        for i in order[:n_full]:
            held[i] = float(context)
        left = pool - window * total - n_full * (context - window)
        if fill == "remainder" and n_full < total and left > 0:  # what rounding left over: the next head
            held[order[n_full]] += min(float(context - window), left)
    by_head = {(la, k): held[i] for i, (_, la, k) in enumerate(flat)}
    heads = []
    for la in range(n_layers):
        for k in range(n_kv):
            share = by_head.get((la, k), float(context))
            full = share >= context
            if la in sliding:  # a plain window: the model's own, or (scope cache) ``local`` tokens
                head_sink, head_recent = 0, local
            else:
                head_sink = 0 if full else sink
                head_recent = None if full else round(share) - sink - (1 if compensation else 0)
            heads.append(
                HeadPolicy(
                    layer=la,
                    kv_head=k,
                    query_heads=tuple(range(k * group, (k + 1) * group)),
                    score=round(kv_scores[la][k], 6),
                    sink=head_sink,
                    recent=head_recent,
                    sliding=la in sliding,
                )
            )
    meta = {k: model.get(k) for k in ("name", "sha256", "architecture", "n_layers", "n_heads", "n_kv_heads")}
    meta["sliding_layers"] = sorted(sliding)
    meta["sliding_window"] = model_window
    return KVPolicy(
        rule=rule,
        budget=float(budget),
        context=int(context),
        sink=sink,
        recent=recent,
        model=meta,
        heads=tuple(heads),
        scan=dict(scan or {}),
        compensation=compensation,
        scope=scope,
        fill=fill,
    )


def _local_window(budget: float, context: int, own: int, n_local: int, n_global: int, window: int) -> tuple[int, float]:
    """(tokens each sliding-layer head holds, tokens x heads left to the global heads) under scope ``cache``.

    The local heads hold the streaming window (at most their own); less when the global heads' streaming
    windows would not fit otherwise, more (up to their own) when every global head is full already."""
    target = budget * (context * n_global + own * n_local)
    local = min(own, window)
    if target - local * n_local < window * n_global:
        local = math.floor((target - window * n_global) / n_local)
    elif target - local * n_local > context * n_global:
        local = min(own, math.floor((target - context * n_global) / n_local))
    return local, target - local * n_local


def _share(flat: list[tuple[float, int, int]], total: float, floor: float, cap: float) -> list[float]:
    """HeadKV's allocation: ``floor`` each, the pool in proportion to score, capped at ``cap`` (water-filling)."""
    held = [floor] * len(flat)
    open_ = [i for i in range(len(flat)) if flat[i][0] > 0]
    pool = total - floor * len(flat)
    while pool > 1e-9 and open_:
        weight = sum(flat[i][0] for i in open_)
        capped = [i for i in open_ if held[i] + pool * flat[i][0] / weight >= cap]
        if not capped:
            for i in open_:
                held[i] += pool * flat[i][0] / weight
            break
        for i in capped:
            pool -= cap - held[i]
            held[i] = cap
        open_ = [i for i in open_ if i not in capped]
    return held


def plan_from_scan(scan_dir: Path, **kwargs: Any) -> KVPolicy:
    """Read ``scan_dir/headmap.json`` and :func:`plan` from it."""
    headmap = read_headmap(scan_dir)
    info = {
        "path": str(scan_dir),
        "seed": headmap.get("settings", {}).get("seed"),
        "headatlas_version": headmap.get("settings", {}).get("headatlas_version"),
    }
    return plan(headmap, scan=info, **kwargs)
