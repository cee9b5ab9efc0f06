"""The Python entry point: ``scan(model) -> HeadMap``."""

from __future__ import annotations

from .causal.verify import VerifySettings, verify_headmap
from .census import Progress, ScanSettings, run_census
from .errors import InvalidSettingError
from .headmap import HeadMap
from .heads import causal_metrics, resolve_head_types
from .models.loader import LoadedModel, load_model
from .models.zoo import DEFAULT_MODEL
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
) -> HeadMap:
    """Scan ``model`` (zoo alias, hub id, local directory, ``.gguf`` file, or a loaded model).

    ``verify=True`` adds causal verification (``headatlas.causal.verify``): per-head ``attribution`` and
    ``ablation_effect`` and a ``verification`` record per head type. Returns a :class:`HeadMap`;
    nothing is written or stored (the CLI does that).
    """
    if verify_settings is not None and not verify:
        raise InvalidSettingError("verify_settings given but verify=False")
    verify_settings = verify_settings or (VerifySettings(seed=seed) if verify else None)
    loaded = (
        model
        if isinstance(model, LoadedModel)
        else load_model(model, device=device, dtype=dtype, device_map=device_map)
    )
    settings = ScanSettings(
        seed=seed,
        head_types=tuple(head_types) if head_types is not None else None,
        probes=probes or ProbeSettings(),
    )
    headmap = run_census(loaded, settings, progress=progress)
    if verify_settings is not None:
        types = resolve_head_types(list(settings.head_types) if settings.head_types is not None else None)
        verify_headmap(loaded, headmap, verify_settings, progress=progress, metrics=causal_metrics(types))
    return headmap


__all__ = ["scan"]
