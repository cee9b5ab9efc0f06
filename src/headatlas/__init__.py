"""headatlas: what does each attention head of this model do?

The names below load on first use (PEP 562), so ``import headatlas`` — and with it every ``headatlas papers …``
command — does not pay for torch and transformers; ``from headatlas import scan`` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .api import scan
    from .census import ScanSettings
    from .headmap import HeadMap, head_name
    from .heads import HeadType, get_head_type, head_types, register_head_type
    from .models.loader import LoadedModel, load_model
    from .probes import ProbeSettings

_LAZY = {
    "scan": ".api",
    "ScanSettings": ".census",
    "HeadMap": ".headmap",
    "head_name": ".headmap",
    "HeadType": ".heads",
    "get_head_type": ".heads",
    "head_types": ".heads",
    "register_head_type": ".heads",
    "LoadedModel": ".models.loader",
    "load_model": ".models.loader",
    "ProbeSettings": ".probes",
}

__all__ = [
    "HeadMap",
    "HeadType",
    "LoadedModel",
    "ProbeSettings",
    "ScanSettings",
    "__version__",
    "get_head_type",
    "head_name",
    "head_types",
    "load_model",
    "register_head_type",
    "scan",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
