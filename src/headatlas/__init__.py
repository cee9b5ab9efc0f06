"""headatlas: what does each attention head of this model do?"""

from ._version import __version__
from .api import scan
from .census import ScanSettings
from .headmap import HeadMap, head_name
from .heads import HeadType, get_head_type, head_types, register_head_type
from .models.loader import LoadedModel, load_model
from .probes import ProbeSettings

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
