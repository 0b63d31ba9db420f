"""Failures carry their data: the cycle path, who wanted what, the chain to a missing package."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.errors import (
    DependencyCycleError,
    ManifestError,
    NoMatchingVersionError,
    NotFoundError,
    ResolutionError,
    VersionConflictError,
)
from ebpm.resolver.dependency import parse_dependencies
from ebpm.resolver.reporter import ResolutionReporter
from ebpm.resolver.resolve import resolve
from ebpm.resolver.source import MemorySource, Source

REG = "localhost:5000"


def src(graph: dict[str, dict[str, dict[str, str]]]) -> MemorySource:
    return MemorySource({f"{REG}/{k}": v for k, v in graph.items()})


def deps(raw: dict[str, object]) -> tuple:  # type: ignore[type-arg]
    return parse_dependencies(raw, default_registry=REG)


def test_cycle_carries_the_path() -> None:
    graph = {"a": {"1.0.0": {"c": "^1"}}, "c": {"1.0.0": {"b": "^1"}}, "b": {"1.0.0": {"a": "*"}}}
    with pytest.raises(DependencyCycleError) as info:
        resolve(deps({"a": "^1"}), src(graph), registry=REG)
    assert info.value.path == ("a@1.0.0", "c@1.0.0", "b@1.0.0", "a@1.0.0")
    assert isinstance(info.value, ResolutionError)


def test_full_ids_outside_the_default_registry() -> None:
    graph = {"a": {"1.0.0": {"a": "*"}}}
    with pytest.raises(DependencyCycleError) as info:
        resolve(deps({"a": "^1"}), src(graph))
    assert info.value.path == (f"{REG}/a@1.0.0", f"{REG}/a@1.0.0")


def test_conflict_carries_who_wanted_what() -> None:
    graph = {"a": {"1.0.0": {"x": "^1"}}, "b": {"1.0.0": {"x": "^2"}},
             "x": {"1.0.0": {}, "2.0.0": {}}}
    with pytest.raises(VersionConflictError) as info:
        resolve(deps({"a": "^1", "b": "^1"}), src(graph), registry=REG, root="app@1.0.0")
    assert info.value.package == f"{REG}/x"
    assert info.value.wanted == (("a@1.0.0", "^1"), ("b@1.0.0", "^2"))


def test_missing_carries_the_chain() -> None:
    graph = {"a": {"1.0.0": {"b": "^1"}}, "b": {"1.0.0": {"gone": "~1.2"}}}
    with pytest.raises(NoMatchingVersionError) as info:
        resolve(deps({"a": "^1"}), src(graph), registry=REG, root="app@1.0.0")
    err = info.value
    assert (err.package, err.range) == (f"{REG}/gone", "~1.2")
    assert err.chain == ("app@1.0.0", "a@1.0.0", "b@1.0.0")


def test_source_failures_other_than_not_found_pass_through() -> None:
    class Down:
        def versions(self, package_id: str) -> list[str]:
            from ebpm.errors import UnreachableError

            raise UnreachableError(f"{package_id}: connection refused")

        def metadata(self, package_id: str, version: str) -> dict[str, object]:
            raise NotFoundError("unused")

    assert isinstance(Down(), Source)
    with pytest.raises(Exception, match="connection refused"):
        resolve(deps({"a": "^1"}), Down())


def test_bad_published_dependencies_name_the_package() -> None:
    graph = {"a": {"1.0.0": {"b": "^^"}}}
    with pytest.raises(ManifestError, match=r"localhost:5000/a@1.0.0: dependencies\.b"):
        resolve(deps({"a": "^1"}), src(graph))


def test_reporter_sees_every_pin() -> None:
    graph = {"a": {"1.0.0": {"b": "^1"}}, "b": {"1.0.0": {}}}
    pins: list[tuple[str, str]] = []
    reporter = ResolutionReporter(on_pin=lambda p, v: pins.append((p, v)))
    resolve(deps({"a": "^1"}), src(graph), reporter=reporter)
    assert sorted(pins) == [(f"{REG}/a", "1.0.0"), (f"{REG}/b", "1.0.0")]
    assert reporter.pins == 2


def test_path_dependencies(tmp_path: Path) -> None:
    def package(where: Path, name: str, body: str) -> None:
        where.mkdir(parents=True)
        (where / "ebpm.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.3.0"\n\n[dependencies]\n{body}'
        )

    package(tmp_path / "app", "app", "")
    package(tmp_path / "libs" / "x", "x", 'y = { path = "../y" }\nb = "^1"\n')
    package(tmp_path / "libs" / "y", "y", "")
    graph = {"b": {"1.0.0": {}}}
    res = resolve(
        deps({"x": {"path": "../libs/x"}}), src(graph), project_root=tmp_path / "app"
    )
    assert res.versions() == {
        f"{REG}/b": "1.0.0", "path:../libs/x": "0.3.0", "path:../libs/y": "0.3.0"
    }
    x = res.get("path:../libs/x")
    assert x is not None and x.kind == "path" and x.path == "../libs/x"
    assert x.dependencies == (("b", f"{REG}/b"), ("y", "path:../libs/y"))
    with pytest.raises(ManifestError, match="path dependency q"):
        resolve(deps({"q": {"path": "../nowhere"}}), src(graph), project_root=tmp_path / "app")
