"""Modules bound lazily load on first use; the lazy ``no_grad`` behaves like torch's decorator."""

import subprocess
import sys

import pytest

from headatlas._lazy import LazyModule, lazy_module, no_grad


def test_a_lazy_module_imports_on_first_attribute_access():
    script = """
import sys
from headatlas._lazy import lazy_module
colorsys = lazy_module("colorsys")
before = "colorsys" in sys.modules
value = colorsys.rgb_to_hsv(1.0, 0.0, 0.0)
print(before, "colorsys" in sys.modules, value)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "(0.0,", "1.0,", "1.0)"]


def test_a_lazy_module_names_itself_and_its_state():
    lazy = lazy_module("json")
    assert isinstance(lazy, LazyModule)
    assert "not loaded yet" in repr(lazy)
    assert lazy.dumps([1]) == "[1]"
    assert "loaded" in repr(lazy) and "not loaded" not in repr(lazy)


def test_a_missing_attribute_or_module_raises_as_a_plain_import_would():
    with pytest.raises(AttributeError):
        _ = lazy_module("json").no_such_function
    with pytest.raises(ModuleNotFoundError):
        _ = lazy_module("headatlas_no_such_module").anything


def test_no_grad_turns_gradients_off_for_functions_and_generators():
    import torch

    weight = torch.ones(2, requires_grad=True)

    @no_grad
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @no_grad
    def doubles(x: torch.Tensor):
        for _ in range(2):
            yield x * 2

    assert double.__name__ == "double"
    assert not double(weight).requires_grad
    assert [y.requires_grad for y in doubles(weight)] == [False, False]
    assert (weight * 2).requires_grad  # outside the decorated functions gradients still flow
