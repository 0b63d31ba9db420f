"""ebpm.record's `@record` behaves as `@dataclass(frozen=True)`: constructor, defaults,
equality, hash, repr, frozen fields, field options, subclasses, replace, asdict, copy and
pickle; and importing it costs no dataclasses or typing."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from ebpm.package import ArgSpec, PackageConfig, ProgramSpec, Requirements
from ebpm.record import FrozenError, asdict, field, fields, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: dict[str, str] = field(default_factory=dict)


@record
class Point3(Point):
    z: int = 0


@record
class Secret:
    user: str
    password: str = field(default="", repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class DcPoint:
    x: int
    y: int = 0
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


def test_constructor_as_a_dataclass() -> None:
    assert [f.name for f in fields(Point(1))] == ["x", "y", "tags"]
    assert (Point(1, 2).x, Point(1, 2).y, Point(1).y) == (1, 2, 0)
    assert Point(x=1, y=2) == Point(1, 2)
    assert Point(1).tags is not Point(1).tags  # a fresh default per record
    calls = ["()", "(1, 2, {}, 4)", "(1, x=1)", "(1, w=2)"]
    for args in calls:  # what a dataclass refuses, a record refuses
        with pytest.raises(TypeError):
            eval(f"DcPoint{args}")
        with pytest.raises(TypeError):
            eval(f"Point{args}")


def test_equality_hash_repr_frozen() -> None:
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert Point(1) != Point3(1)  # another class is another value
    assert repr(Point3(1, 2, {}, 3)) == "Point3(x=1, y=2, tags={}, z=3)"
    assert repr(ProgramSpec("p", "tp/a/b", "tracepoint")) == repr(
        dataclasses.make_dataclass("ProgramSpec", [("name", str), ("section", str),
                                                   ("type", str), ("attach", str, ""),
                                                   ("group", str, ""), ("autoload", bool, True)],
                                   frozen=True)("p", "tp/a/b", "tracepoint"))
    assert hash(Requirements("5.8")) == hash(Requirements("5.8"))
    assert {ArgSpec("a", "a", "int", 4): 1}[ArgSpec("a", "a", "int", 4)] == 1
    with pytest.raises(TypeError):  # a dict field is unhashable, as with a dataclass
        hash(Point(1))
    p = Point(1)
    with pytest.raises(FrozenError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x  # type: ignore[misc]


def test_replace_asdict_copy_pickle() -> None:
    p = Point3(1, 2, {"a": "b"}, 3)
    assert replace(p, z=4) == Point3(1, 2, {"a": "b"}, 4) and p.z == 3
    with pytest.raises(TypeError):
        replace(p, w=1)
    config = PackageConfig("x", "1.0.0", programs=(ProgramSpec("p", "tp/a/b", "tracepoint"),),
                           requirements=Requirements(arch=("x86_64",)))
    as_dict = asdict(config)
    assert as_dict["programs"] == ({"name": "p", "section": "tp/a/b", "type": "tracepoint",
                                    "attach": "", "group": "", "autoload": True},)
    assert as_dict["requirements"] == {"kernel": "", "btf": True, "arch": ("x86_64",)}
    assert PackageConfig.from_json(config.to_json()) == config
    assert copy.deepcopy(config) == config and pickle.loads(pickle.dumps(config)) == config


def test_field_options_and_post_init() -> None:
    assert repr(Secret("ada", "pw")) == "Secret(user='ada')"
    assert Secret("ada", "pw") == Secret("ada", "other")  # not compared
    assert hash(Secret("ada", "pw")) == hash(Secret("ada"))

    @record
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    assert Checked(1).n == 1
    with pytest.raises(ValueError):
        Checked(-1)
    with pytest.raises(TypeError):  # a field without default after one with: refused
        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_importing_it_imports_neither_dataclasses_nor_typing() -> None:
    import subprocess
    import sys

    code = ("import sys, ebpm.record\n"
            "bad = [m for m in ('dataclasses', 'typing', 'inspect') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
