"""From atlas to inference: a head-aware KV-cache policy planned from a scan, a kvpress press, a real cache.

``policy`` and ``duo`` need no torch; ``cache`` (a transformers ``Cache``) and ``press`` (kvpress) import
their frameworks when used: ``from headatlas.kv.cache import PolicyCache``, ``from headatlas.kv.press import
AtlasPress``.
"""

from .duo import export_duo, read_duo
from .policy import RULES, HeadPolicy, KVPolicy, plan, plan_from_scan, read_headmap

__all__ = ["RULES", "HeadPolicy", "KVPolicy", "export_duo", "plan", "plan_from_scan", "read_duo", "read_headmap"]
