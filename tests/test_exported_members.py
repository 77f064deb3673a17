"""Each package's public surface is exactly its ``__all__``: every name resolves, none is
private, and nothing the package defines is importable from it without being listed.

A name that leaves ``__all__`` or appears outside it is a change of interface, so it
should fail here and be made on purpose (httpx keeps the same guard).
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PACKAGES = [
    "sekisho.model",
    "sekisho.selectors",
    "sekisho.semantics",
    "sekisho.render",
    "sekisho.dataplane",
    "sekisho.sources",
    "sekisho.agent",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_members(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for member in exported:
        assert not member.startswith("_"), member
        assert hasattr(module, member), f"{name}.__all__ names {member}, which does not exist"
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith(name)
    }
    assert public <= set(exported), f"public but not in __all__: {sorted(public - set(exported))}"


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_objects_say_what_they_are(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        value = getattr(module, member)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert getattr(value, "__doc__", None), f"{name}.{member} has no docstring"
