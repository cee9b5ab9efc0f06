"""Causal verification of a scan: do the heads a pattern score names matter for their job?

For each head type t with member set S (from the census) and metric m (the type's ``HeadType.metric``):

* **Set test.** Ablate all of S at once and measure the damage to m (metric change, oriented so
  positive = worse). Compare with *distinct* random head sets of size |S| drawn from the non-members, each
  member's stand-in taken from a layer within ``layer_window`` of the member's layer (default 0: the same
  layer, so a set is compared with other heads of its own layers, not with heads of layers that matter more
  or less overall). The window widens only as far as it must for its layers to hold as many distinct sets as
  the test may draw; a model too small for that gives every set it has, an exact permutation test
  (:mod:`headatlas.causal.random_sets`). The record states the window used and, when the sets could be
  listed, how many there are (``random_population``). Two tests:

  - **screening** (the default): 20 random sets in one batched run, empirical
    ``p = (1 + #random sets with damage >= the set's) / (1 + 20)``, uncorrected; ``verified`` when the
    damage is positive and p < ``alpha`` (0.05), i.e. the set beats every random set. Its floor is 1/21
    (``1 / (population + 1)`` on a model with fewer sets).
  - **strict** (``strict=True``, ``scan --verify --strict``): a sequential Monte Carlo p-value
    (:mod:`headatlas.causal.statistics`): 20 random sets first, more (up to ``n_random_max`` = 400, a floor
    of 1/401) only while the answer is in doubt; the p-values of the types tested in one scan are
    Holm-corrected together; the set's effect gets a 95% bootstrap interval over the prompts. ``verified``
    when the damage is positive, the corrected p < ``alpha`` and the interval lies above the random sets'
    mean. A confirmed type costs up to 400 batched forward passes of its metric's prompts (about 1.5 s each
    for SmolLM2-135M's text metric on a 2-core CPU), so it is meant for a GPU.
    :func:`strict_set_tests` runs the strict test alone on a screened scan's members, and
    :func:`adopt_set_tests` puts its records in (``headatlas atlas strict``).
* **Per head.** Attribution patching estimates every head's single-head ablation damage at once;
  exact single-head ablation is run for the members (the ``max_exact_members`` strongest by score),
  the ``top_n`` strongest non-members by score and the ``top_n`` heads by attribution. Spearman's rho
  of attribution against exact damage over those heads is reported; each member's own effect stands
  next to the set's in the reports.

Results go into the HeadMap's rows and ``HeadMap.verification[type]``. Both row columns are damage
to the type's metric in its own units (nats for the losses), positive = removing the head hurts:
``attribution`` (estimate, every head) and ``ablation_effect`` (exact single-head ablation, where it
ran; ``None`` elsewhere, an empty CSV cell).
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidSettingError
from ..headmap import HeadMap
from ..models.loader import LoadedModel
from ..probes import ProbeBatch, ProbeSettings
from .attribution import attribution_scores
from .interventions import HeadRef, Replacement, check_method, head_label, make_replacement, run_sets
from .metrics import Metric, damage, get_metric, probe_batches
from .random_sets import RandomSets
from .statistics import bootstrap_interval, holm, rounds, sequential_p, spearman

VerifyProgress = Callable[[str, int, int], None]
"""``(stage, done, total)``: called as each head type finishes and, in a strict test, after each round of
random sets (stage ``"<type> sets"``)."""

SCREENING_RULE = (
    "verified = set damage > 0 and empirical p < {alpha}, p = (1 + #random sets with damage >= the set's)"
    " / (1 + n_random); with 20 random sets this means beating every one"
)
STRICT_RULE = (
    "verified = set damage > 0, Holm-corrected p < {alpha} across the types of the scan, and the damage's 95%"
    " bootstrap interval over prompts above the random sets' mean; p from a sequential Monte Carlo test"
    " (Besag-Clifford: random layer-matched sets drawn 20 at first, up to {n_max} while in doubt, stopping at"
    " {h} sets that do as much damage; floor 1/{floor})"
)


@dataclass(frozen=True)
class VerifySettings:
    """How verification runs. Probe sizes are smaller than the census's: each set is a forward pass."""

    seed: int = 0
    method: str = "mean"
    strict: bool = False
    n_random: int = 20
    n_random_max: int = 400
    stop_after: int = 10
    layer_window: int = 0
    top_n: int = 5
    max_exact_members: int = 16
    attribution_steps: int = 1
    alpha: float = 0.05
    repeat_len: int = 20
    n_repeat: int = 8
    text_len: int = 64
    n_text: int = 8
    needle_contexts: tuple[int, ...] = (1024,)
    needle_per_context: int = 2
    max_batch: int = 16

    def __post_init__(self) -> None:
        check_method(self.method)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidSettingError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.n_random, int) or self.n_random < 20:
            raise InvalidSettingError(f"n_random must be at least 20 random head sets, got {self.n_random!r}")
        if not isinstance(self.n_random_max, int) or self.n_random_max < self.n_random:
            raise InvalidSettingError(f"n_random_max must be an integer >= n_random, got {self.n_random_max!r}")
        if not isinstance(self.stop_after, int) or self.stop_after < 1:
            raise InvalidSettingError(f"stop_after must be a positive integer, got {self.stop_after!r}")
        for name in ("layer_window", "top_n", "max_exact_members"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidSettingError(f"{name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.attribution_steps, int) or self.attribution_steps < 1:
            raise InvalidSettingError(f"attribution_steps must be a positive integer, got {self.attribution_steps!r}")
        if not 0 < self.alpha < 1:
            raise InvalidSettingError(f"alpha must lie in (0, 1), got {self.alpha!r}")
        self.probe_settings()  # validates the probe sizes

    def rounds(self) -> tuple[int, ...]:
        """Random sets drawn per round of the sequential test (:func:`~.statistics.rounds`)."""
        return rounds(self.n_random, self.n_random_max)

    def rule(self) -> str:
        if not self.strict:
            return SCREENING_RULE.format(alpha=self.alpha)
        return STRICT_RULE.format(
            alpha=self.alpha, n_max=self.n_random_max, h=self.stop_after, floor=self.n_random_max + 1
        )

    def probe_settings(self) -> ProbeSettings:
        return ProbeSettings(
            repeat_len=self.repeat_len,
            n_repeat=self.n_repeat,
            text_len=self.text_len,
            n_text=self.n_text,
            needle_contexts=self.needle_contexts,
            needle_per_context=self.needle_per_context,
            batch_size=self.max_batch,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "method": self.method,
            "n_random": self.n_random,
            **(
                {"strict": True, "n_random_max": self.n_random_max, "stop_after": self.stop_after}
                if self.strict
                else {}
            ),
            "layer_window": self.layer_window,
            "top_n": self.top_n,
            "max_exact_members": self.max_exact_members,
            "attribution_steps": self.attribution_steps,
            "alpha": self.alpha,
            "probes": self.probe_settings().to_dict(),
        }


def metric_batches(loaded: LoadedModel, metric: Metric, settings: VerifySettings, seed: int) -> list[ProbeBatch]:
    return probe_batches(loaded, metric, settings.probe_settings(), seed)


def replacement_for(
    loaded: LoadedModel, metric: Metric, batches: list[ProbeBatch], settings: VerifySettings
) -> Replacement:
    """Mean statistics over the metric's own batches; resample reads the same probe drawn with seed + 1."""
    if settings.method == "resample":
        return make_replacement(loaded, "resample", metric_batches(loaded, metric, settings, settings.seed + 1)[:1])
    return make_replacement(loaded, settings.method, batches)


def _r(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


@dataclass
class _MetricRun:
    """What every head type sharing one metric reuses: batches, replacement, clean value, attribution."""

    metric: Metric
    batches: list[ProbeBatch]
    replacement: Replacement
    clean: float
    clean_samples: np.ndarray  # [N] the metric on each prompt, unablated
    attribution: torch.Tensor | None  # [L, H] estimated single-head damage (None: set tests only)
    exact: dict[HeadRef, float]


def _prepare(loaded: LoadedModel, metric: Metric, settings: VerifySettings, *, per_head: bool = True) -> _MetricRun:
    """Batches, replacement and clean values of ``metric``; with ``per_head``, attribution over every head."""
    batches = metric_batches(loaded, metric, settings, settings.seed)
    replacement = replacement_for(loaded, metric, batches, settings)
    clean = float(run_sets(loaded, batches, metric, [[]], replacement, settings.max_batch)[0])
    clean_samples = (
        run_sets(loaded, batches, metric, [[]], replacement, settings.max_batch, per_sample=True)[0]
        if settings.strict
        else torch.zeros(0, dtype=torch.float64)
    )
    attribution = None
    if per_head:
        own_mean = settings.method == "mean"  # statistics of these very batches: one forward + one backward
        change = attribution_scores(
            loaded, batches, metric, None if own_mean else replacement, steps=settings.attribution_steps
        )
        attribution = -change if metric.higher_is_better else change
    return _MetricRun(metric, batches, replacement, clean, clean_samples.numpy(), attribution, {})


def _exact(loaded: LoadedModel, run: _MetricRun, heads: Sequence[HeadRef], settings: VerifySettings) -> None:
    need = [h for h in dict.fromkeys(heads) if h not in run.exact]
    if not need:
        return
    values = run_sets(loaded, run.batches, run.metric, [[h] for h in need], run.replacement, settings.max_batch)
    for head, value in zip(need, values.tolist(), strict=True):
        run.exact[head] = float(damage(run.metric, run.clean, value))


def _strict_test(
    loaded: LoadedModel,
    head_type: str,
    members: list[HeadRef],
    first_sets: list[list[HeadRef]],
    sampler: RandomSets,
    run: _MetricRun,
    settings: VerifySettings,
    progress: VerifyProgress | None = None,
) -> dict[str, Any]:
    """The member set against random sets: the sequential test, the effect's bootstrap interval, a provisional
    verdict (:func:`verify_headmap` corrects the p-values of a scan's types together and then decides).
    ``progress("<type> sets", drawn, n_random_max)`` follows the rounds (a type can take many minutes; one that
    stops early or runs out of sets ends below ``n_random_max``)."""
    metric = run.metric

    def report() -> None:
        if progress is not None:
            progress(f"{head_type} sets", len(sampler.drawn), settings.n_random_max)

    def effects(head_sets: list[list[HeadRef]]) -> np.ndarray:
        values = run_sets(loaded, run.batches, metric, head_sets, run.replacement, settings.max_batch, per_sample=True)
        clean = torch.from_numpy(run.clean_samples)[None]
        return np.asarray(damage(metric, clean, values))  # [sets, prompts]

    first = effects([members, *first_sets])
    per_prompt, effect = first[0], float(first[0].mean())
    pending = [first[1:].mean(1)]
    report()

    def draw(n: int) -> list[float]:
        if pending:
            return pending.pop().tolist()
        more = sampler.draw(n)
        if not more:
            return []
        values = effects(more).mean(1).tolist()
        report()
        return values

    test = sequential_p(effect, draw, settings.rounds(), settings.stop_after)
    random_effects = test.random_effects
    random_mean = float(random_effects.mean())
    spread = float(random_effects.std(ddof=1))
    interval = bootstrap_interval(per_prompt, seed=settings.seed * 1_000_003 + zlib.crc32(head_type.encode()))
    ablated = float(run.clean - effect) if metric.higher_is_better else float(run.clean + effect)
    return {
        "status": "pending",
        "ablated_metric": _r(ablated),
        "effect": _r(effect),
        "effect_ci": None if interval is None else [_r(interval[0]), _r(interval[1])],
        "n_prompts": len(per_prompt),
        "random_mean": _r(random_mean),
        "random_std": _r(spread),
        "random_max": _r(float(random_effects.max())),
        "z_score": _r((effect - random_mean) / spread) if spread > 0 else None,
        "p_value": _r(test.p_value),
        "n_random": len(random_effects),
        "stopped_early": test.stopped_early,
        "random_effects": [_r(e) for e in random_effects.tolist()],
        "random_sets": [[head_label(h) for h in s] for s in first_sets],  # the first round's; the rest follow the seed
    }


def _screening_test(
    loaded: LoadedModel, members: list[HeadRef], random_sets: list[list[HeadRef]], run: _MetricRun,
    settings: VerifySettings,
) -> dict[str, Any]:  # fmt: skip
    """The member set against ``n_random`` random sets in one batched run, uncorrected: a screen (p >= 1/21)."""
    metric = run.metric
    values = run_sets(loaded, run.batches, metric, [members, *random_sets], run.replacement, settings.max_batch)
    effects = [float(damage(metric, run.clean, v)) for v in values.tolist()]
    effect, random_effects = effects[0], np.asarray(effects[1:])
    p_value = (1 + int((random_effects >= effect).sum())) / (1 + len(random_effects))
    verified = bool(effect > 0 and p_value < settings.alpha)
    spread = float(random_effects.std(ddof=1))
    return {
        "status": "verified" if verified else "not_verified",
        "verified": verified,
        "ablated_metric": _r(values[0].item()),
        "effect": _r(effect),
        "random_mean": _r(float(random_effects.mean())),
        "random_std": _r(spread),
        "random_max": _r(float(random_effects.max())),
        "z_score": _r((effect - float(random_effects.mean())) / spread) if spread > 0 else None,
        "p_value": _r(p_value),
        "n_random": len(random_effects),
        "random_effects": [_r(e) for e in random_effects.tolist()],
        "random_sets": [[head_label(h) for h in s] for s in random_sets],
    }


def correct_and_decide(records: Mapping[str, dict[str, Any]], alpha: float) -> None:
    """Holm-correct the p-values of the types whose set test ran, then set ``verified`` and ``status``."""
    tested = [t for t, r in records.items() if r.get("status") == "pending"]
    for type_id, p_holm in zip(tested, holm([records[t]["p_value"] for t in tested]), strict=True):
        record = records[type_id]
        interval = record["effect_ci"]
        above_random = interval is not None and interval[0] > record["random_mean"]
        verified = bool(record["effect"] > 0 and p_holm < alpha and above_random)
        record.update(p_holm=_r(p_holm), n_tests=len(tested), verified=verified)
        record["status"] = "verified" if verified else "not_verified"


def _header(members: Sequence[HeadRef], run: _MetricRun, settings: VerifySettings) -> dict[str, Any]:
    """The fields of a type's record that do not depend on the set test's outcome."""
    return {
        "metric": run.metric.name,
        "metric_description": run.metric.description,
        "method": settings.method,
        "members": [head_label(h) for h in members],
        "clean_metric": _r(run.clean),
        "rule": settings.rule(),
        "n_random": settings.n_random,  # the tests replace it by the number of sets they drew
    }


def set_test(
    loaded: LoadedModel,
    head_type: str,
    members: Sequence[HeadRef],
    run: _MetricRun,
    settings: VerifySettings,
    progress: VerifyProgress | None = None,
) -> dict[str, Any]:
    """The set test of one head type (screening or strict, per ``settings``): the record's set-test fields.

    Without members there is nothing to test and no random set is drawn (no window, no population); with
    so many members that no random set exists, the record says which window was searched.
    """
    untested: dict[str, Any] = {"verified": None, "effect": None, "n_random": 0, "random_effects": []}
    if not members:
        return {"status": "no_members", **untested}
    gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + zlib.crc32(head_type.encode()))
    wanted = settings.n_random_max if settings.strict else settings.n_random
    sampler = RandomSets.plan(members, loaded.facts, gen, settings.layer_window, wanted)
    first_sets = sampler.draw(settings.n_random)
    record: dict[str, Any] = {"layer_window": sampler.window, "random_population": sampler.population_size}
    if not first_sets:
        record.update(status="too_many_members", **untested)
    elif settings.strict:
        record.update(_strict_test(loaded, head_type, list(members), first_sets, sampler, run, settings, progress))
    else:
        record.update(_screening_test(loaded, list(members), first_sets, run, settings))
    return record


def verify_type(
    loaded: LoadedModel,
    head_type: str,
    scores: dict[HeadRef, float],
    members: Sequence[HeadRef],
    run: _MetricRun,
    settings: VerifySettings,
    progress: VerifyProgress | None = None,
) -> dict[str, Any]:
    """The verification record of one head type (see the module docstring for the rule)."""
    facts = loaded.facts
    attribution = run.attribution
    if attribution is None:
        raise ValueError("verify_type needs a metric run prepared with per_head=True")
    record = _header(members, run, settings)
    record.update(set_test(loaded, head_type, members, run, settings, progress))
    # per-head: exact ablation for members + top candidates, compared with attribution
    by_score = sorted(scores, key=lambda h: (-scores[h], h))
    strong_members = [h for h in by_score if h in set(members)][: settings.max_exact_members]
    non_members = [h for h in by_score if h not in set(members)][: settings.top_n]
    flat = attribution.flatten()
    order = torch.argsort(-flat, stable=True)[: settings.top_n].tolist()
    by_attr = [(i // facts.n_heads, i % facts.n_heads) for i in order]
    checked = list(dict.fromkeys([*strong_members, *non_members, *by_attr]))
    _exact(loaded, run, checked, settings)
    rho = spearman([float(attribution[h]) for h in checked], [run.exact[h] for h in checked])
    record["per_head"] = {
        "attribution": "attribution patching: gradient x (ablated - clean output), all heads in one backward"
        + (f", integrated over {settings.attribution_steps} steps" if settings.attribution_steps > 1 else ""),
        "exact_heads": [head_label(h) for h in checked],
        "exact_effects": [_r(run.exact[h]) for h in checked],
        "attributions": [_r(float(attribution[h])) for h in checked],
        "spearman_attribution_vs_exact": _r(rho),
        "top_by_attribution": [head_label(h) for h in by_attr],
    }
    return record


def verify_headmap(
    loaded: LoadedModel,
    headmap: HeadMap,
    settings: VerifySettings | None = None,
    progress: VerifyProgress | None = None,
    *,
    metrics: Mapping[str, Metric],
) -> HeadMap:
    """Verify every head type of ``headmap`` in place (rows gain ``attribution``/``ablation_effect``).

    ``metrics`` maps a head-type id to the metric that checks it; a type without one is ``no_metric``.
    """
    settings = settings or VerifySettings()
    facts = loaded.facts
    if (facts.n_layers, facts.n_heads) != (headmap.facts.n_layers, headmap.facts.n_heads):
        raise InvalidSettingError(
            f"the headmap is of a {headmap.facts.n_layers}x{headmap.facts.n_heads} model, not {facts.name}"
        )
    types = list(headmap.head_types)
    runs: dict[str, _MetricRun] = {}
    attributions: dict[str, torch.Tensor] = {}
    exact_of: dict[str, dict[HeadRef, float]] = {}
    for done, type_id in enumerate(types, start=1):
        if type_id not in metrics:
            headmap.verification[type_id] = {"status": "no_metric", "verified": None}
            continue
        if not _has_scores(headmap, type_id):
            headmap.verification[type_id] = {"status": "no_scores", "verified": None}
            continue
        metric = metrics[type_id]
        if metric.name not in runs:
            runs[metric.name] = _prepare(loaded, metric, settings)
        run = runs[metric.name]
        rows = [r for r in headmap.rows if r["head_type"] == type_id]
        scores = {(r["layer"], r["head"]): float(r["score"]) for r in rows if r["score"] is not None}
        members = [(r["layer"], r["head"]) for r in rows if r["member"]]
        headmap.verification[type_id] = verify_type(loaded, type_id, scores, members, run, settings, progress)
        if run.attribution is not None:
            attributions[type_id] = run.attribution
        exact_of[type_id] = run.exact
        if progress is not None:
            progress("verify", done, len(types))
    correct_and_decide(headmap.verification, settings.alpha)
    for row in headmap.rows:
        type_id = row["head_type"]
        if type_id in attributions:
            head = (row["layer"], row["head"])
            row["attribution"] = round(float(attributions[type_id][head]), 6)
            exact = exact_of[type_id].get(head)
            row["ablation_effect"] = None if exact is None else round(exact, 6)
    headmap.settings["verify"] = settings.to_dict()
    return headmap


PER_TYPE_FIELDS = ("metric", "metric_description", "method", "members", "clean_metric", "per_head")
"""Fields of a verification record the set test does not write: kept when a strict test replaces a screen."""
SCREEN_SUMMARY = ("status", "verified", "effect", "random_mean", "random_max", "p_value", "n_random", "layer_window")
"""What a record keeps, under ``screen``, of the screening test a strict one replaced."""
STRICT_ONLY = ("strict", "n_random_max", "stop_after")
"""Keys of :meth:`VerifySettings.to_dict` in which a strict run differs from a screening one."""


def _has_scores(headmap: HeadMap, type_id: str) -> bool:
    """Whether the census scored the type (a task unfit for the model's tokenizer scores no head)."""
    return any(r["score"] is not None for r in headmap.rows if r["head_type"] == type_id)


def _tested(headmap: HeadMap, metrics: Mapping[str, Metric]) -> list[str]:
    """The types whose set test runs (as in :func:`verify_headmap`): a metric, scores and members."""
    return [t for t in headmap.head_types if t in metrics and _has_scores(headmap, t) and headmap.members(t)]


def _resumable(record: Mapping[str, Any], members: Sequence[HeadRef], metric: Metric) -> bool:
    """Whether an earlier uncorrected strict record still answers for ``members`` under ``metric``."""
    return (
        record.get("status") in ("pending", "too_many_members")  # a tested type has members
        and record.get("members") == [head_label(h) for h in members]
        and record.get("metric") == metric.name
    )


def strict_set_tests(
    loaded: LoadedModel,
    headmap: HeadMap,
    settings: VerifySettings,
    progress: VerifyProgress | None = None,
    *,
    metrics: Mapping[str, Metric],
    done: Mapping[str, dict[str, Any]] | None = None,
    on_record: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The strict set test of every type of ``headmap`` with members, Holm-corrected together.

    Each record is what :func:`verify_headmap` with the same strict ``settings`` writes for the type (same
    prompts, seed and random sets), less the per-head checks; so a scan verified by the 20-set screen gets
    the strict statistics for the cost of its set tests alone (:func:`adopt_set_tests` puts them in).

    A long run can resume: each type's test depends only on the settings and the type (its own seed), so
    ``done`` (uncorrected records from an earlier run with these settings) is reused for every type whose
    members and metric it matches, and ``on_record(type_id, record)`` receives each new uncorrected record
    as soon as it is tested (to be saved); the Holm correction runs once all are in.
    """
    if not settings.strict:
        raise InvalidSettingError("strict_set_tests needs VerifySettings(strict=True)")
    _check_strict_of(headmap, settings.to_dict())  # before the first of many set tests, not after the last
    facts = loaded.facts
    if (facts.n_layers, facts.n_heads) != (headmap.facts.n_layers, headmap.facts.n_heads):
        raise InvalidSettingError(
            f"the headmap is of a {headmap.facts.n_layers}x{headmap.facts.n_heads} model, not {facts.name}"
        )
    runs: dict[str, _MetricRun] = {}
    records: dict[str, dict[str, Any]] = {}
    tested = _tested(headmap, metrics)
    for count, type_id in enumerate(tested, start=1):
        metric = metrics[type_id]
        members = [(r["layer"], r["head"]) for r in headmap.rows if r["head_type"] == type_id and r["member"]]
        earlier = (done or {}).get(type_id)
        if earlier is not None and _resumable(earlier, members, metric):
            records[type_id] = copy.deepcopy(dict(earlier))
        else:
            if metric.name not in runs:
                runs[metric.name] = _prepare(loaded, metric, settings, per_head=False)
            run = runs[metric.name]
            test = set_test(loaded, type_id, members, run, settings, progress)
            records[type_id] = {**_header(members, run, settings), **test}
            if on_record is not None:
                on_record(type_id, copy.deepcopy(records[type_id]))
        if progress is not None:
            progress("strict", count, len(tested))
    correct_and_decide(records, settings.alpha)
    return records


def _check_strict_of(headmap: HeadMap, settings: Mapping[str, Any]) -> None:
    """Refuse strict ``settings`` (:meth:`VerifySettings.to_dict`) that differ from the scan's verification
    settings in more than being strict (another seed or probes: other prompts and random sets)."""
    screened = headmap.settings.get("verify")
    wanted = {k: v for k, v in settings.items() if k not in STRICT_ONLY}
    same = screened is not None and {k: v for k, v in screened.items() if k not in STRICT_ONLY} == wanted
    if not same or not settings.get("strict"):
        raise InvalidSettingError("the strict tests use other verification settings than the scan (seed or probes)")


def adopt_set_tests(headmap: HeadMap, records: Mapping[str, dict[str, Any]], settings: Mapping[str, Any]) -> None:
    """Put the strict set tests ``records`` (:func:`strict_set_tests`) into a screened ``headmap`` in place.

    ``settings`` are those of the strict run (:meth:`VerifySettings.to_dict`). Each tested type's record takes
    the strict fields and keeps its per-head checks and, under ``screen``, the screen's verdict and numbers.
    Refused unless ``settings`` differ from the scan's verification settings only in being strict, and
    ``records`` cover exactly the scan's tested types with the same members and metrics (else the Holm family
    or the members would not be the scan's).
    """
    _check_strict_of(headmap, settings)
    tested = {t for t, r in headmap.verification.items() if "p_value" in r}
    if tested != set(records):
        raise InvalidSettingError(
            f"the strict records cover {sorted(records)}, the scan tested {sorted(tested)}: rerun the strict tests"
        )
    for type_id, new in records.items():  # every check before the first change
        old = headmap.verification[type_id]
        if (old.get("members"), old.get("metric")) != (new.get("members"), new.get("metric")):
            raise InvalidSettingError(f"the strict record of {type_id!r} has other members or another metric")
    for type_id, new in records.items():
        old = headmap.verification[type_id]
        screen = old.get("screen") or {k: old[k] for k in SCREEN_SUMMARY if k in old}
        kept = {k: old[k] for k in PER_TYPE_FIELDS if k in old}
        headmap.verification[type_id] = {**kept, **new, "screen": screen}
    headmap.settings["verify"] = dict(settings)


def verify_set(
    loaded: LoadedModel,
    heads: Sequence[HeadRef],
    metric: str | Metric,
    settings: VerifySettings | None = None,
    label: str = "custom",
) -> dict[str, Any]:
    """Verify any head set against random sets under ``metric`` (same record as a head type's)."""
    settings = settings or VerifySettings()
    run = _prepare(loaded, get_metric(metric), settings)
    record = verify_type(loaded, label, {}, list(heads), run, settings)
    correct_and_decide({label: record}, settings.alpha)  # one test: the corrected p is the p
    return record
