"""The Python entry point: ``scan(model) -> HeadMap``."""

from __future__ import annotations

from .census import Progress, ScanSettings, run_census
from .headmap import HeadMap
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
) -> HeadMap:
    """Scan ``model`` (zoo alias, hub id, local directory, ``.gguf`` file, or a loaded model).

    Returns a :class:`HeadMap`; nothing is written or stored (the CLI does that).
    """
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
    return run_census(loaded, settings, progress=progress)


__all__ = ["scan"]
