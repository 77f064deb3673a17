"""Record types whose methods are written, not generated at import.

``@dataclass`` writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``
and (frozen) ``__setattr__``/``__delattr__`` as source text and compiles it when its
module is imported: about 0.6 ms a class, 1.4 ms a frozen one, paid by every command
at every start (sixty record types on the path of ``sekisho matrix`` took a fifth of
the whole command at 1,000 pods). A :class:`Record` subclass lists its fields in
``__slots__`` (and annotates them, in order) and writes its ``__init__``; this base gives it, from those fields and
nothing generated, what a ``@dataclass(frozen=True, slots=True)`` would:

* ``__eq__``: equal when of the same class and equal in every compared field, in
  order (``NotImplemented`` against another class), as a dataclass compares;
* ``__hash__``: the hash of the tuple of the compared fields (less ``unhashed``), the
  very value a frozen dataclass gives;
* ``__repr__``: ``Name(field=value, ...)`` over the shown fields, a dataclass's text;
* frozen: assigning or deleting a field raises
  :class:`dataclasses.FrozenInstanceError`; ``__init__`` sets fields with
  :data:`set_field` (``object.__setattr__``), as a frozen dataclass's does;
* copy and pickle rebuild the same fields without running ``__init__``;
* ``__dataclass_fields__``, one ``dataclasses.Field`` a field (whether ``__init__``
  takes it, whether it is compared and shown), so that :func:`dataclasses.replace`,
  :func:`dataclasses.fields` and :func:`dataclasses.is_dataclass` read a record as
  they read the dataclass it was (``Cluster`` and ``Pod`` are rebuilt with
  ``replace`` across the code and the tests).

A subclass that declares no ``__slots__`` has an instance ``__dict__`` (for
``functools.cached_property``, which writes there), and its fields are its annotations.

Class keywords: ``uncompared`` (fields left out of equality and the hash: a
dataclass's ``field(compare=False)``), ``unhashed`` (out of the hash only:
``field(hash=False)``), ``unshown`` (out of the repr: ``field(repr=False)``), and
``frozen=False`` for a mutable record (assignable, unhashable, as a dataclass with
``eq=True`` and ``frozen=False``). A field with a mutable default (a dataclass's
``default_factory``) takes ``None`` in ``__init__`` for a new empty value.
``tests/test_records.py`` holds each of these to what
``@dataclass`` gives a twin class, and every converted class to its old behaviour.
"""

from __future__ import annotations

import inspect
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dataclasses import Field

set_field = object.__setattr__
"""How a frozen record's ``__init__`` sets a field (its own ``__setattr__`` refuses)."""


def _getter(names: tuple[str, ...]) -> Any:
    """A function of a record giving the tuple of its ``names`` fields, in C."""
    if not names:
        return lambda _record: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    return attrgetter(*names)


_MADE: dict[type, dict[str, Field[Any]]] = {}


class _DataclassFields:
    """A record class's ``__dataclass_fields__``, made when first asked for (by
    ``dataclasses.replace``, ``fields``...): so ``dataclasses`` is imported then."""

    def __get__(self, record: object, cls: type[Record]) -> dict[str, Field[Any]]:
        made = _MADE.get(cls)
        if made is None:
            if cls is Record:
                raise AttributeError("__dataclass_fields__")  # the base is no dataclass
            made = _MADE[cls] = _dataclass_fields(cls)
        return made


def _dataclass_fields(cls: type[Record]) -> dict[str, Field[Any]]:
    """One ``dataclasses.Field`` a field, as ``@dataclass`` would record it: whether
    ``__init__`` takes it, whether it is compared and shown."""
    import dataclasses

    init = getattr(cls.__init__, "__code__", None)  # None: object's, takes nothing
    takes = set(init.co_varnames[1 : init.co_argcount + init.co_kwonlyargcount] if init else ())
    out: dict[str, Field[Any]] = {}
    for name in cls._fields:
        made: Field[Any] = dataclasses.field(
            init=name in takes, compare=name in cls._compared_names, repr=name in cls._shown
        )
        made.name = name
        made._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
        out[name] = made
    return out


def _rebuild(cls: type[Record], values: tuple[Any, ...]) -> Record:
    """A record of ``cls`` with these field values (copy and pickle: no ``__init__``)."""
    record = object.__new__(cls)
    for name, value in zip(cls._fields, values, strict=True):
        set_field(record, name, value)
    return record


class Record:
    """Base of the written-out record types: see the module's docstring."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    """Every field, base classes' first, in the order of their annotations (as a
    dataclass orders them); ``__slots__`` names the same fields, in any order."""
    _shown: ClassVar[tuple[str, ...]] = ()
    _compared: ClassVar[Any] = staticmethod(_getter(()))
    _hashed: ClassVar[Any] = staticmethod(_getter(()))
    _values: ClassVar[Any] = staticmethod(_getter(()))
    _compared_names: ClassVar[tuple[str, ...]] = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]] = _DataclassFields()  # type: ignore[assignment]
    """Each subclass's fields as ``dataclasses`` records them (``replace``, ``fields``)."""

    def __init_subclass__(
        cls,
        *,
        uncompared: tuple[str, ...] = (),
        unhashed: tuple[str, ...] = (),
        unshown: tuple[str, ...] = (),
        frozen: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[str] = []
        for klass in reversed(cls.__mro__):
            own = inspect.get_annotations(klass)
            named = [n for n, t in own.items() if not str(t).startswith(("ClassVar", "typing."))]
            slots = klass.__dict__.get("__slots__")
            if slots is not None and klass is not Record and set(named) != set(slots):
                raise TypeError(f"{klass.__qualname__}: __slots__ are not its annotated fields")
            fields.extend(named)
        unknown = {*uncompared, *unhashed, *unshown} - set(fields)
        if unknown:
            raise TypeError(f"{cls.__qualname__}: no fields {sorted(unknown)}")
        cls._fields = tuple(fields)
        cls._shown = tuple(f for f in fields if f not in unshown)
        compared = tuple(f for f in fields if f not in uncompared)
        cls._compared_names = compared
        cls._compared = staticmethod(_getter(compared))
        cls._hashed = staticmethod(_getter(tuple(f for f in compared if f not in unhashed)))
        cls._values = staticmethod(_getter(cls._fields))
        if not frozen:
            cls.__setattr__ = object.__setattr__  # type: ignore[method-assign,assignment]
            cls.__delattr__ = object.__delattr__  # type: ignore[method-assign]
            cls.__hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: Any) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._compared(self) == self._compared(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._hashed(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__class__, self._values(self)))
