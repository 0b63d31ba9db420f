"""Immutable records: what `@dataclass(frozen=True)` gives, without its cost at import.

A class deriving from `Record` declares its fields as annotations (defaults as class
attributes, `field(default_factory=...)` for mutable ones), like a frozen dataclass, and gets
the keyword/positional constructor, `==`, `hash`, `repr` and frozen attributes. `replace(r,
**changes)` and `asdict(r)` work as `dataclasses.replace`/`asdict` do.

Why: the dataclasses module takes ~5 ms to import (inspect, ast, tokenize...) and builds each
class with `exec` (~0.5 ms per class here); the run path (`ebpm run`) defines ~25 records and
is measured against a C tool that starts in 13 ms. A Record class costs what a plain class
costs. Type checkers read Records as dataclasses (PEP 681 `dataclass_transform`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
else:
    def dataclass_transform(**_: object) -> object:  # the marker only type checkers read
        return lambda cls: cls

__all__ = ["Record", "field", "replace", "asdict", "FrozenRecordError"]


class FrozenRecordError(AttributeError):
    """Assigning to a field of a record (as dataclasses.FrozenInstanceError)."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A field whose default is made per record (a dict, a set...)."""
    return _Factory(default_factory)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record:
    """Base of immutable records: fields from the class's annotations, in order (a subclass's
    after its base's)."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__annotations__", {})
        names = list(cls._fields)
        defaults = dict(cls._defaults)
        for name, kind in own.items():
            if str(kind).startswith(("ClassVar", "typing.ClassVar")):
                continue
            if name not in names:
                names.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
        cls._fields = tuple(names)
        cls._defaults = defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} positional arguments "
                            f"but {len(args)} were given")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument "
                                f"{name!r}")
            if name not in self._defaults and name not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                                f"{name!r}")
            values[name] = value
        if len(values) < len(names):
            defaults = self._defaults
            for name in names:
                if name not in values:
                    if name not in defaults:
                        raise TypeError(f"{type(self).__name__}() missing required argument: "
                                        f"{name!r}")
                    default = defaults[name]
                    values[name] = default.make() if type(default) is _Factory else default
        self.__dict__.update(values)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        d = self.__dict__
        return tuple(d[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        d = self.__dict__
        inner = ", ".join(f"{name}={d[name]!r}" for name in self._fields)
        return f"{type(self).__qualname__}({inner})"


def replace(record: R, /, **changes: Any) -> R:
    """A copy of `record` with `changes` (as dataclasses.replace)."""
    d = record.__dict__
    values = {name: d[name] for name in record._fields}
    for name in changes:
        if name not in values:
            raise TypeError(f"{type(record).__name__} has no field {name!r}")
    values.update(changes)
    return type(record)(**values)


def asdict(record: Record) -> dict[str, Any]:
    """The fields as a dict, records inside turned into dicts too (as dataclasses.asdict:
    lists and tuples keep their type)."""
    d = record.__dict__
    return {name: _plain(d[name]) for name in record._fields}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value
