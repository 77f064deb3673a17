"""The public surface of the enforcement packages: sorted, and every name importable."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("sekisho.dataplane", id="dataplane"),
        pytest.param("sekisho.sources", id="sources"),
        pytest.param("sekisho.agent", id="agent"),
    ],
)
def test_exported_members(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__ == sorted(mod.__all__)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name
