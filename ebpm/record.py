"""Records: classes declared as `@dataclass(frozen=True)` would be, built without generating code.

`dataclasses` writes each class's `__init__`, `__eq__`, `__hash__` and `__repr__` as source text
and compiles it, and importing it brings in `inspect` (with `ast`, `dis`, `tokenize`): about
5 ms, plus ~0.25 ms per class, on every start of `ebpm pull` and `ebpm run` (issue 18). A
record gets the same methods as shared functions that read the class's field list, so
declaring one costs microseconds. Declared like a dataclass (`typing.dataclass_transform`: mypy
checks constructors, defaults and frozenness as for one):

    @record
    class Descriptor:
        media_type: str
        size: int = 0
        annotations: dict[str, str] = field(default_factory=dict)

A record is frozen (assigning a field raises `FrozenError`), compared and hashed by its
fields, and pickles and copies as a plain object does. `field(default=, default_factory=,
repr=, compare=)` as in dataclasses; a subclass that is a record too adds its fields after its
base's; a method the class defines itself (`__repr__`, `__hash__`, ...) is kept;
`__post_init__` runs after the constructor. `replace`, `asdict` and `fields` work as
dataclasses' do. No `typing` at run time (the run path does not otherwise import it).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_: object) -> object:  # a marker only type checkers read
        return lambda f: f

__all__ = ["record", "field", "replace", "asdict", "fields", "Field", "FrozenError"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenError(AttributeError):
    """Assigning to a field of a frozen record (dataclasses' FrozenInstanceError)."""


class Field:
    """One field of a record: its name, default (or default factory), and whether it shows in
    the repr and takes part in comparisons and the hash."""

    __slots__ = ("name", "default", "default_factory", "repr", "compare")

    def __init__(self, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
                 repr: bool = True, compare: bool = True) -> None:
        if default is not MISSING and default_factory is not None:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
          repr: bool = True, compare: bool = True) -> Any:
    """A field with options, as `dataclasses.field`."""
    return Field(default, default_factory, repr, compare)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in declaration order."""
    found: tuple[Field, ...] | None = getattr(obj, "__record_fields__", None)
    if found is None:
        raise TypeError(f"{obj!r} is not a record")
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record `obj` with some fields changed (the constructor checks them)."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in changes}
    values.update(changes)
    return obj.__class__(**values)  # type: ignore[no-any-return]


def asdict(obj: Any) -> dict[str, Any]:
    """The record `obj` as a dict, records inside it too, containers copied (as
    `dataclasses.asdict`)."""
    if not hasattr(type(obj), "__record_fields__"):
        raise TypeError("asdict() should be called on record instances")
    return _plain(obj)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in (str, int, float, bool, bytes, type(None)):
        return value
    if hasattr(cls, "__record_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in cls.__record_fields__}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return cls(*[_plain(v) for v in value])
    if isinstance(value, (list, tuple)):
        return cls(_plain(v) for v in value)
    if isinstance(value, dict):
        return cls((_plain(k), _plain(v)) for k, v in value.items())
    import copy

    return copy.deepcopy(value)


def _fields_of(cls: type) -> tuple[Field, ...]:
    own: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if text.startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        if isinstance(value, Field):  # the class attribute is the default, as in dataclasses
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        own.append(spec)
    inherited: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__record_fields__", ()):
            inherited[f.name] = f
    for f in own:
        inherited.pop(f.name, None)
        inherited[f.name] = f
    out = tuple(inherited.values())
    seen_default = False
    for f in out:
        if f.default is not MISSING or f.default_factory is not None:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__name__}: non-default argument {f.name!r} follows "
                            "default argument")
    return out


def _make_init(cls: type, specs: tuple[Field, ...]) -> Callable[..., None]:
    name = cls.__qualname__
    names = tuple(f.name for f in specs)
    known = frozenset(names)
    count = len(names)
    post_init = getattr(cls, "__post_init__", None)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > count:
            raise TypeError(f"{name}() takes {count + 1} positional arguments but "
                            f"{len(args) + 1} were given")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in known:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = value
        if len(values) < count:
            for f in specs:
                if f.name not in values:
                    if f.default is not MISSING:
                        values[f.name] = f.default
                    elif f.default_factory is not None:
                        values[f.name] = f.default_factory()
                    else:
                        raise TypeError(f"{name}() missing 1 required argument: {f.name!r}")
        self.__dict__.update(values)
        if post_init is not None:
            post_init(self)

    return __init__


def _build(cls: type) -> type:
    specs = _fields_of(cls)
    compared = tuple(f.name for f in specs if f.compare)
    shown = tuple(f.name for f in specs if f.repr)

    def key(self: Any) -> tuple[Any, ...]:
        d = self.__dict__
        return tuple(d[n] for n in compared)

    def __eq__(self: Any, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    def __repr__(self: Any) -> str:
        d = self.__dict__
        inner = ", ".join(f"{n}={d[n]!r}" for n in shown)
        return f"{self.__class__.__qualname__}({inner})"

    def __setattr__(self: Any, attr: str, value: Any) -> None:
        raise FrozenError(f"cannot assign to field {attr!r}")

    def __delattr__(self: Any, attr: str) -> None:
        raise FrozenError(f"cannot delete field {attr!r}")

    own = cls.__dict__
    for attr, value in (("__eq__", __eq__), ("__hash__", __hash__), ("__repr__", __repr__)):
        if attr not in own or (attr == "__hash__" and own[attr] is None):
            setattr(cls, attr, value)
    cls.__init__ = _make_init(cls, specs)  # type: ignore[misc]
    cls.__setattr__ = __setattr__  # type: ignore[assignment]
    cls.__delattr__ = __delattr__  # type: ignore[assignment]
    cls.__record_fields__ = specs  # type: ignore[attr-defined]
    cls.__match_args__ = tuple(f.name for f in specs)  # type: ignore[attr-defined,misc]
    return cls


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: type[T]) -> type[T]:
    """Make `cls` a frozen record (see the module's docstring)."""
    return _build(cls)  # type: ignore[return-value]
