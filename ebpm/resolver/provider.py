"""The resolvelib Provider: all of ebpm's knowledge about packages that the resolution needs.

It turns `[dependencies]` tables into requirements, asks a `Source` for tag lists and config
dependencies (each asked once and cached), orders candidates (the locked version first, then
newest first), and remembers who required what so that failures can name the chain.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import semver
from resolvelib import AbstractProvider

from ebpm.errors import EbpmError, ManifestError, NotFoundError, ResolutionError
from ebpm.resolver.dependency import (
    Dependency,
    PathDependency,
    RegistryDependency,
    UrlDependency,
    parse_dependencies,
)
from ebpm.resolver.ranges import is_version, parse_version
from ebpm.resolver.source import Source

__all__ = ["Requirement", "Candidate", "Provider", "ROOT"]

ROOT = "<root>"  # the identity of the project being resolved


@dataclass(frozen=True)
class Requirement:
    """A dependency as the resolver sees it: the package id and what it accepts."""

    package: str
    dependency: Dependency

    def __str__(self) -> str:
        dep = self.dependency
        if isinstance(dep, RegistryDependency):
            return f"{self.package} {dep.range}"
        return self.package


@dataclass(frozen=True)
class Candidate:
    """One concrete package: a registry version, a pinned url, or a local directory."""

    package: str
    version: semver.Version | None
    kind: str = "registry"  # "registry" | "url" | "path"
    url: str = ""
    sha256: str = ""
    path: str = ""
    dependencies: tuple[Requirement, ...] = field(default=(), compare=False, hash=False)

    @property
    def version_text(self) -> str:
        return "" if self.version is None else str(self.version)


class Provider(AbstractProvider):  # type: ignore[type-arg]
    """Answers resolvelib's questions from a `Source`; holds what failures need to explain."""

    def __init__(
        self,
        source: Source,
        *,
        locked: Mapping[str, str] | None = None,
        project_root: Path | None = None,
        root_id: str = "",
    ) -> None:
        self.source = source
        self.root_id = root_id
        self.locked = dict(locked or {})
        self.project_root = project_root
        self._versions: dict[str, list[semver.Version]] = {}
        self.missing: dict[str, EbpmError] = {}
        self._deps: dict[tuple[str, str], tuple[Requirement, ...]] = {}
        self.parent: dict[str, Candidate | None] = {}  # package id -> who last required it
        self._candidates: dict[str, list[Candidate]] = {}
        self.required_by: dict[int, Candidate] = {}  # id(requirement) -> the candidate it is of
        self.dead_ends: list[Requirement] = []  # requirements that no version could ever meet
        self._dead_ids: set[int] = set()
        self._satisfied: dict[tuple[int, int], bool] = {}
        self._keep: list[tuple[Requirement, Candidate]] = []

    # -- requirements -------------------------------------------------------------------

    def requirements(self, deps: Iterable[Dependency], *, base: str = ".") -> list[Requirement]:
        """Requirements for parsed dependencies; path dependencies resolve against `base`."""
        out = []
        for dep in deps:
            if isinstance(dep, PathDependency):
                rel = posixpath.normpath(posixpath.join(base, dep.path))
                dep = PathDependency(dep.name, rel)
            package = ROOT if self.root_id and dep.package == self.root_id else dep.package
            out.append(Requirement(package, dep))
        return out

    # -- resolvelib interface -----------------------------------------------------------

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.package

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple[bool, bool, bool, str]:
        # Conflicting names first (fail fast), then pinned ones (exact, url, path, locked),
        # then the rest in name order so that resolution is deterministic.
        in_conflict = any(
            c.requirement.package == identifier or (c.parent and c.parent.package == identifier)
            for c in backtrack_causes
        )
        pinned = identifier in self.locked
        exact = False
        for info in information[identifier]:
            dep = info.requirement.dependency
            if not isinstance(dep, RegistryDependency) or dep.range.is_exact:
                exact = True
                break
        return (not in_conflict, not exact, not pinned, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        reqs = list(requirements[identifier])
        bad = set(incompatibilities[identifier])
        if not reqs:
            return []
        first = reqs[0].dependency
        if isinstance(first, UrlDependency):
            cand = Candidate(identifier, None, "url", url=first.url, sha256=first.sha256)
            ok = all(self.is_satisfied_by(r, cand) for r in reqs) and cand not in bad
            return [cand] if ok else []
        if isinstance(first, PathDependency):
            cand = self._path_candidate(first)
            return [cand] if cand not in bad else []
        versions = self.available(identifier)
        interned = self._candidates.get(identifier)
        if interned is None:
            interned = self._candidates[identifier] = [Candidate(identifier, v) for v in versions]
        out = [c for c in interned if all(self.is_satisfied_by(r, c) for r in reqs)]
        if not out:
            for r in reqs:
                if id(r) in self._dead_ids:
                    continue
                self._dead_ids.add(id(r))
                if not any(self.is_satisfied_by(r, c) for c in interned):
                    self.dead_ends.append(r)
        out = [c for c in out if c not in bad]
        locked = self.locked.get(identifier)
        if locked:
            for i, c in enumerate(out):
                if c.version_text == locked:
                    out.insert(0, out.pop(i))
                    break
        return out

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        # resolvelib asks this for every requirement of every pinned package on every round:
        # memoize by object identity (requirements are cached per package, candidates interned).
        key = (id(requirement), id(candidate))
        known = self._satisfied.get(key)
        if known is None:
            known = self._satisfied[key] = self._satisfies(requirement, candidate)
            self._keep.append((requirement, candidate))  # keeps the ids valid
        return known

    def _satisfies(self, requirement: Requirement, candidate: Candidate) -> bool:
        dep = requirement.dependency
        if isinstance(dep, RegistryDependency):
            return candidate.version is not None and dep.range.allows(candidate.version)
        if isinstance(dep, UrlDependency):
            return candidate.sha256 == dep.sha256 and candidate.url == dep.url
        return candidate.package == requirement.package

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        reqs = self.dependencies_of(candidate)
        for r in reqs:
            self.parent[r.package] = candidate
            self.required_by[id(r)] = candidate
        return [r for r in reqs if r.package != ROOT]

    # -- helpers --------------------------------------------------------------------------

    def available(self, package_id: str) -> list[semver.Version]:
        """Semver versions of `package_id`, newest first (empty and noted when it is missing)."""
        cached = self._versions.get(package_id)
        if cached is not None:
            return cached
        try:
            tags = self.source.versions(package_id)
        except NotFoundError as err:
            self.missing[package_id] = err
            tags = []
        texts = {t.replace("_", "+") for t in tags}
        versions = sorted(
            (parse_version(t) for t in texts if is_version(t)), reverse=True
        )
        self._versions[package_id] = versions
        return versions

    def dependencies_of(self, candidate: Candidate) -> tuple[Requirement, ...]:
        """The requirements a candidate declares (cached; url candidates declare none)."""
        key = (candidate.package, candidate.version_text)
        cached = self._deps.get(key)
        if cached is not None:
            return cached
        if candidate.kind == "url":
            reqs: tuple[Requirement, ...] = ()
        elif candidate.kind == "path":
            reqs = candidate.dependencies
        else:
            raw = self.source.metadata(candidate.package, candidate.version_text)
            registry = candidate.package.split("/", 1)[0]
            where = f"{candidate.package}@{candidate.version_text}: dependencies"
            deps = parse_dependencies(raw, default_registry=registry, where=where)
            for dep in deps:
                if isinstance(dep, PathDependency):
                    raise ResolutionError(
                        f"{where}: published package declares path dependency {dep.name!r}",
                        hint="a published package may depend on registry or url packages only",
                    )
            reqs = tuple(self.requirements(deps))
        self._deps[key] = reqs
        return reqs

    def _path_candidate(self, dep: PathDependency) -> Candidate:
        from ebpm.package import Manifest

        if self.project_root is None:
            raise ResolutionError(
                f"{dep.name}: path dependency {dep.path!r} needs a project directory"
            )
        try:
            manifest = Manifest.load(self.project_root / dep.path)
        except ManifestError as err:
            raise ManifestError(
                f"path dependency {dep.name} ({dep.path}): {err.message}", hint=err.hint
            ) from err
        from ebpm.config import default_registry

        deps = parse_dependencies(
            manifest.dependencies,
            default_registry=default_registry(),
            where=f"{dep.path}/ebpm.toml: dependencies",
        )
        reqs = tuple(self.requirements(deps, base=dep.path))
        return Candidate(
            dep.package,
            parse_version(manifest.version),
            "path",
            path=dep.path,
            dependencies=reqs,
        )
