"""Loading on first use: package attributes (PEP 562) and modules, so importing a package stays cheap."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, TypeVar, cast


def lazy_exports(
    package: str, namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``where`` maps an exported name to its relative module."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__


class LazyModule:
    """A stand-in for a module that imports it on first attribute access.

    Modules whose *declarations* must load without torch (the head-type registry behind ``heads list``, the
    probe and metric registries it checks names against) bind ``torch = lazy_module("torch")`` instead of
    ``import torch``: defining functions that use it costs nothing, and torch loads the first time one runs.
    Under type checking the same modules import torch plainly (``if TYPE_CHECKING``), so annotations and
    mypy see the real module.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        """Called only for attributes not yet copied here: import the module once, then keep each attribute
        read so that later reads are plain look-ups (score loops read ``torch.*`` often)."""
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        value = getattr(module, attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A :class:`LazyModule` for ``name`` (absolute module name)."""
    return LazyModule(name)


F = TypeVar("F", bound=Callable[..., Any])


def no_grad(fn: F) -> F:
    """``@torch.no_grad()`` for modules that bind torch lazily: torch is imported when ``fn`` first runs
    (generator functions included, as torch's own decorator handles them)."""
    wrapped: Callable[..., Any] | None = None

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal wrapped
        if wrapped is None:
            import torch

            wrapped = torch.no_grad()(fn)
        return wrapped(*args, **kwargs)

    return cast(F, call)
