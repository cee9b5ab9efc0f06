"""The Python entry point: ``scan(model) -> HeadMap``."""

from __future__ import annotations

from .causal.verify import VerifySettings
from .census import Progress
from .headmap import HeadMap
from .models.loader import LoadedModel
from .models.zoo import DEFAULT_MODEL
from .pipeline import run_scan, scan_settings
from .probes import ProbeSettings


def scan(
    model: str | LoadedModel = DEFAULT_MODEL,
    *,
    head_types: list[str] | None = None,
    seed: int = 0,
    probes: ProbeSettings | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    device_map: str | None = None,
    progress: Progress | None = None,
    verify: bool = False,
    verify_settings: VerifySettings | None = None,
    stability_seeds: list[int] | tuple[int, ...] = (),
) -> HeadMap:
    """Scan ``model`` (zoo alias, hub id, local directory, ``.gguf`` file, or a loaded model).

    ``verify=True`` adds causal verification (``headatlas.causal.verify``): per-head ``attribution`` and
    ``ablation_effect`` and a ``verification`` record per head type; ``stability_seeds`` reruns the census with
    those seeds and adds a ``stability`` record per type (:mod:`headatlas.stability`). Returns the :class:`HeadMap` of
    :func:`headatlas.pipeline.run_scan` (without the attention patterns, which only the report needs; use
    ``run_scan`` and ``headatlas.publish.publish`` for those and for writing files); nothing is written or stored.
    """
    settings = scan_settings(seed, head_types, probes)
    return run_scan(
        model,
        settings,
        verify=verify,
        verify_settings=verify_settings,
        patterns=False,
        device=device,
        dtype=dtype,
        device_map=device_map,
        progress=progress,
        stability_seeds=stability_seeds,
    ).headmap


__all__ = ["scan"]
