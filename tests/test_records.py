"""``sekisho.records.Record``: what a written-out record type keeps of ``@dataclass``.

Each behaviour is checked against a twin ``@dataclass(frozen=True, slots=True)`` with
the same fields, so the record types moved off ``@dataclass`` (start-up: their
methods are no longer compiled at import) compare, hash, print, copy and refuse
assignment as they did.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from sekisho.records import Record, set_field


class Point(Record, uncompared=("note",), unhashed=("tags",), unshown=("cache",)):
    """A record with a field of every kind."""

    __slots__ = ("cache", "note", "tags", "x", "y")

    x: int
    y: int
    tags: tuple[str, ...]
    note: str
    cache: str

    def __init__(self, x: int, y: int = 0, tags: tuple[str, ...] = (), note: str = "") -> None:
        set_field(self, "x", x)
        set_field(self, "y", y)
        set_field(self, "tags", tags)
        set_field(self, "note", note)
        set_field(self, "cache", f"{x},{y}")


@dataclasses.dataclass(frozen=True, slots=True)
class Twin:
    """What ``Point`` was as a dataclass."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = dataclasses.field(default=(), hash=False)
    note: str = dataclasses.field(default="", compare=False)
    cache: str = dataclasses.field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache", f"{self.x},{self.y}")


class Other(Record):
    """Same fields as a two-field record of another class."""

    __slots__ = ("x", "y")

    x: int
    y: int

    def __init__(self, x: int, y: int = 0) -> None:
        set_field(self, "x", x)
        set_field(self, "y", y)


class Draft(Record, frozen=False):
    """A mutable record."""

    __slots__ = ("items", "name")

    name: str
    items: list[int]

    def __init__(self, name: str, items: list[int]) -> None:
        self.name = name
        self.items = items


CASES = [
    pytest.param((1, 2, ("a",), "n"), (1, 2, ("a",), "n"), id="equal"),
    pytest.param((1, 2, ("a",), "n"), (1, 2, ("a",), "other note"), id="uncompared-differs"),
    pytest.param((1, 2, ("a",), "n"), (1, 3, ("a",), "n"), id="field-differs"),
    pytest.param((1, 2, ("a",), "n"), (1, 2, ("b",), "n"), id="unhashed-differs"),
]


@pytest.mark.parametrize(("a", "b"), CASES)
def test_equality_and_hash_are_the_dataclass_ones(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert (Point(*a) == Point(*b)) == (Twin(*a) == Twin(*b))
    assert (Point(*a) != Point(*b)) == (Twin(*a) != Twin(*b))
    # The very hash a frozen dataclass gives (the tuple of its hashed fields).
    assert hash(Point(*a)) == hash(Twin(*a))


def test_repr_is_the_dataclass_text() -> None:
    p, t = Point(1, 2, ("a",), "n"), Twin(1, 2, ("a",), "n")
    assert repr(p) == repr(t).replace("Twin(", "Point(", 1)
    assert repr(Draft("d", [1])) == "Draft(name='d', items=[1])"


def test_another_class_is_never_equal() -> None:
    assert Point(1, 2) != Other(1, 2)
    assert Point(1, 2).__eq__(Other(1, 2)) is NotImplemented
    assert Point(1, 2) != (1, 2)


def test_frozen_fields_refuse_assignment_and_deletion() -> None:
    p = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.x
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.unknown = 1  # type: ignore[attr-defined]
    assert p.x == 1


def test_copy_and_pickle_rebuild_every_field() -> None:
    p = Point(1, 2, ("a",), "n")
    for again in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert again == p and again is not p
        assert (again.note, again.cache, again.tags) == ("n", "1,2", ("a",))


def test_a_mutable_record_assigns_and_is_unhashable_like_a_dataclass() -> None:
    d = Draft("d", [1])
    d.items.append(2)
    d.name = "e"
    assert d == Draft("e", [1, 2])
    with pytest.raises(TypeError):
        hash(d)
    assert pickle.loads(pickle.dumps(d)) == d


def test_dataclasses_functions_read_a_record_as_its_dataclass() -> None:
    p, t = Point(1, 2, ("a",), "n"), Twin(1, 2, ("a",), "n")
    assert dataclasses.is_dataclass(p) and dataclasses.is_dataclass(Point)
    for ours, theirs in zip(dataclasses.fields(p), dataclasses.fields(t), strict=True):
        assert (ours.name, ours.init, ours.compare, ours.repr) == (
            theirs.name,
            theirs.init,
            theirs.compare,
            theirs.repr,
        )
    assert dataclasses.asdict(p) == dataclasses.asdict(t)
    moved = dataclasses.replace(p, y=5, note="m")
    assert moved == Point(1, 5, ("a",), "m") and moved.cache == "1,5"
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(p, cache="x")


def test_a_mutable_default_is_new_for_each_record() -> None:
    from sekisho.model.types import Cluster, Pod

    a, b = Pod("ns", "a"), Pod("ns", "b")
    assert a.labels == {} and a.labels is not b.labels
    assert Cluster().namespaces is not Cluster().namespaces
    assert dataclasses.replace(a, labels={"x": "y"}).labels == {"x": "y"}


def test_slots_must_name_the_annotated_fields() -> None:
    with pytest.raises(TypeError, match="annotated fields"):

        class Wrong(Record):
            __slots__ = ("x",)

            x: int
            y: int

    with pytest.raises(TypeError, match="no fields"):

        class Unknown(Record, uncompared=("z",)):
            __slots__ = ("x",)

            x: int


def _converted() -> list[type[Record]]:
    from sekisho import errors
    from sekisho.model import checks, kinds, load, parse, reader, types
    from sekisho.selectors import expr
    from sekisho.semantics import matrix, probe, program, summary, universe

    modules = [errors, checks, kinds, load, parse, reader, types, expr]
    modules += [matrix, probe, program, summary, universe]
    return sorted(
        {
            c
            for m in modules
            for c in vars(m).values()
            if isinstance(c, type) and issubclass(c, Record) and c.__module__ == m.__name__
        },
        key=lambda c: c.__qualname__,
    )


MUTABLE = {"Drafts", "Meta", "NodeDraft", "PodDraft", "PodTemplate", "ReadResult", "Report"}
MUTABLE |= {"WorkloadDraft"}
"""The record types that were ``@dataclass(slots=True)`` without ``frozen``."""


def test_the_converted_record_types_keep_their_frozen_ness() -> None:
    converted = _converted()
    assert len(converted) >= 50, [c.__qualname__ for c in converted]
    for cls in converted:
        assert dataclasses.is_dataclass(cls), cls  # replace, fields as before
        # Slots only, but for the matrix's results (their cached properties need a dict).
        assert (cls.__dictoffset__ == 0) == (cls.__name__ not in {"Matrix", "ProbeMatrix"}), cls
        assert (cls.__hash__ is None) == (cls.__name__ in MUTABLE), cls
        assert (cls.__setattr__ is object.__setattr__) == (cls.__name__ in MUTABLE), cls


def test_program_records_compare_and_hash_as_before() -> None:
    from sekisho.selectors.expr import parse as parse_selector
    from sekisho.semantics.program import ANY_ENTITY, EntityMatch, NetSet, Rule, SelectorSet

    a = SelectorSet(parse_selector("app == 'a'"), description="one policy's set")
    b = SelectorSet(parse_selector("app == 'a'"), description="another's")
    # ``description`` and ``key`` are not compared (one IP set for both), the key is kept.
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert 'description="one policy\'s set"' in repr(a) and ", key=" not in repr(a)
    assert EntityMatch().is_any and EntityMatch(selector=a) != ANY_ENTITY
    r = Rule("allow", "ingress rule 0", protocol=6, dst=EntityMatch(selector=a))
    assert {r: 1}[Rule("allow", "ingress rule 0", protocol=6, dst=EntityMatch(selector=b))] == 1
    assert NetSet(()).key == "nets "
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.action = "deny"  # type: ignore[misc]
