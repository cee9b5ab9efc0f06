"""Typed errors. Each also subclasses the matching built-in, so callers may catch either."""

from __future__ import annotations


class HeadatlasError(Exception):
    """Base class of every error headatlas raises on purpose. The CLI prints it as one line and exits with
    ``exit_code``: 2 for input it refuses, 1 for work that ran but did not all succeed."""

    exit_code = 2


class UnknownModelError(HeadatlasError, KeyError):
    """A model name is neither a zoo alias, a local directory, a GGUF file, nor a reachable hub id."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownHeadTypeError(HeadatlasError, KeyError):
    """A head-type id is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnsupportedArchitectureError(HeadatlasError, ValueError):
    """The model's architecture lacks something a computation needs (e.g. per-head modules)."""


class CorruptModelError(HeadatlasError, ValueError):
    """A weights file exists but cannot be read (truncated or corrupt GGUF, broken checkpoint)."""


class ModelFetchError(HeadatlasError, RuntimeError):
    """A zoo model could not be fetched or failed its checksum."""


class InvalidSettingError(HeadatlasError, ValueError):
    """A run setting (seed, device, dtype, probe size …) is out of range."""


class TaskUnavailable(InvalidSettingError):
    """A head type's task cannot be built for this tokenizer (e.g. too few single-token items).

    The census records the type as unavailable (no scores, the reason in the scan's info) instead of failing.
    """


class ArchitectureUnavailable(TaskUnavailable, UnsupportedArchitectureError):
    """A head type's scorer does not handle this architecture (e.g. weights-only scores on GPT-2's fused
    ``c_attn``): that type is reported unavailable, with the reason, and the rest of the scan goes on."""


class CatalogueError(HeadatlasError, ValueError):
    """A paper entry, contribution form or catalogue import file is malformed; the message names the field."""


class UnknownHeadNameError(CatalogueError, KeyError):
    """A head name is not in the paper catalogue's vocabulary; the message lists close matches."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreError(HeadatlasError, RuntimeError):
    """The SQLite store is unreadable, from a newer version, or a write was refused."""


class SourceError(HeadatlasError, ConnectionError):
    """A paper source (arXiv, Daily Papers, Semantic Scholar) is unreachable or answered unusably."""


class DeliveryError(HeadatlasError, ConnectionError):
    """Some digest messages were not delivered (they stay due and go out on the next send)."""

    exit_code = 1
