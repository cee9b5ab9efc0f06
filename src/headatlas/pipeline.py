"""The scan pipeline: load, census, causal verification and attention patterns, as one typed result.

:func:`run_scan` is the one scan sequence; the ``scan`` command, :func:`headatlas.scan` and ``atlas build``
all call it, and :func:`headatlas.publish.publish` writes and stores what it returns. The seed is given
once, in :class:`~headatlas.census.ScanSettings`: the probes, verification (unless it gets settings of its
own) and the pattern examples all take it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .causal.interventions import default_budget, memory_budget
from .causal.verify import VerifySettings, verify_headmap
from .census import Progress, ScanSettings, run_census
from .errors import InvalidSettingError
from .headmap import HeadMap
from .heads import causal_metrics, resolve_head_types
from .models.loader import LoadedModel, load_model
from .models.zoo import DEFAULT_MODEL
from .probes import ProbeSettings
from .stability import stability


@dataclass
class ScanResult:
    """Everything one scan found: the head map (scores, members and, with verification, the causal checks
    and IOI roles) and the attention patterns: every head on the two shared probe examples, and each head type's
    strongest members on a sample of its own probe (:mod:`headatlas.evidence`)."""

    headmap: HeadMap
    patterns: dict[str, Any] | None  # None when the scan was asked not to capture them

    @property
    def verified(self) -> bool:
        return "verify" in self.headmap.settings

    @property
    def verification(self) -> dict[str, Any]:
        """Per head type: the set test and per-head checks (empty without verification)."""
        return self.headmap.verification

    @property
    def ioi_roles(self) -> dict[str, dict[str, float]] | None:
        """The IOI roles upstream of S-inhibition (``s2_signal``, ``s1_next_signal``: head -> drop), if measured."""
        return next((info["roles"] for info in self.headmap.probes.values() if "roles" in info), None)


def scan_settings(
    seed: int = 0, head_types: Sequence[str] | None = None, probes: ProbeSettings | None = None
) -> ScanSettings:
    """Validated settings (seed, head types, probe sizes): bad input fails here, before any model loads."""
    settings = ScanSettings(
        seed=seed, head_types=tuple(head_types) if head_types is not None else None, probes=probes or ProbeSettings()
    )
    resolve_head_types(list(settings.head_types) if settings.head_types is not None else None)
    return settings


def _for_seed(progress: Progress | None, seed: int) -> Progress | None:
    """``progress`` with each stage of a stability rerun marked by its seed (``"needle · seed 1"``)."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{stage} · seed {seed}", done, total)


def run_scan(
    model: str | LoadedModel = DEFAULT_MODEL,
    settings: ScanSettings | None = None,
    *,
    verify: bool = False,
    verify_settings: VerifySettings | None = None,
    patterns: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    device_map: str | None = None,
    progress: Progress | None = None,
    stability_seeds: Sequence[int] = (),
    max_memory: int | None = None,
) -> ScanResult:
    """Scan ``model`` (zoo alias, hub id, local directory, ``.gguf`` file, or a loaded model).

    ``verify=True`` adds causal verification (per-head ``attribution`` and ``ablation_effect``, a
    ``verification`` record per head type), with ``verify_settings`` or the defaults at the scan's seed.
    ``patterns=False`` skips the attention-pattern capture. ``stability_seeds`` reruns the census with those
    seeds too and records, per type, how far the members and scores agree (:mod:`headatlas.stability`).
    ``max_memory`` (bytes) bounds what a batched step holds beyond the model
    (:func:`headatlas.causal.interventions.memory_budget`) and is recorded in the settings; ``None``: a quarter
    of the memory free when the scan starts, on the model's device
    (:func:`~headatlas.causal.interventions.default_budget`). The budget sets how rows are grouped into passes,
    and on some CPUs a kernel's last float bit follows the grouping: give ``max_memory`` for the same bytes on
    every run (the published atlas does).
    Nothing is written or stored (see ``publish``).
    """
    settings = settings or ScanSettings()
    if verify_settings is not None and not verify:
        raise InvalidSettingError("verify_settings given but verify=False")
    selected = resolve_head_types(list(settings.head_types) if settings.head_types is not None else None)
    others = [s for s in dict.fromkeys(stability_seeds) if s != settings.seed]
    if stability_seeds and not others:
        raise InvalidSettingError("stability needs at least one seed other than the scan's")
    other_settings = [replace(settings, seed=seed) for seed in others]  # a bad seed fails before the model loads
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, device=device, dtype=dtype, device_map=device_map)
    )
    with memory_budget(max_memory if max_memory is not None else default_budget(loaded.device)):
        headmap = run_census(loaded, settings, progress=progress)
        if others:
            again = [run_census(loaded, other, progress=_for_seed(progress, other.seed)) for other in other_settings]
            headmap.stability = stability([headmap, *again], [settings.seed, *others])
            headmap.settings["stability_seeds"] = [settings.seed, *others]
        if max_memory is not None:
            headmap.settings["max_memory"] = max_memory
        if verify:
            verify_headmap(
                loaded,
                headmap,
                verify_settings or VerifySettings(seed=settings.seed),
                progress=progress,
                metrics=causal_metrics(selected),
            )
    captured = None
    if patterns:
        from .capture import capture_patterns

        captured = capture_patterns(loaded, seed=settings.seed, headmap=headmap, probes=settings.probes)
    return ScanResult(headmap, captured)


__all__ = ["ScanResult", "run_scan", "scan_settings"]
