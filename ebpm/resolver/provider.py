"""The resolvelib Provider: all of ebpm's knowledge about packages that the resolution needs.

It turns `[dependencies]` tables into requirements, asks a `Source` for tag lists and config
dependencies (each asked once and cached), orders candidates (the locked version first, then
newest first), and remembers who required what so that failures can name the chain.

Identities (keys): a package is identified by its id (`registry/repository`, `url:…`,
`path:…`, `git+…`), except a private copy, whose key is `SCOPE > ID` with SCOPE the key of the
package that declared it private. A package's public dependencies live in its own scope, its
private ones in a scope named after itself, so a private copy and everything it pulls in are
resolved apart from the rest of the graph.

Version equivalence: when a registry version does not satisfy a range, it still does when the
source says another version that the range allows has the same content digest (only asked
when the plain ranges leave nothing, so a graph without conflicts never pays for it).
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
    GitDependency,
    PathDependency,
    RegistryDependency,
    UrlDependency,
    parse_dependencies,
)
from ebpm.resolver.source import Source, content_digest, git_package
from ebpm.versions import parse_version, tag_versions

__all__ = ["Requirement", "Candidate", "Provider", "ROOT", "SCOPE_SEP", "real_id", "scope_of"]

ROOT = "<root>"  # the identity of the project being resolved
SCOPE_SEP = " > "  # between a private copy's scope and its package id


def real_id(key: str) -> str:
    """The package id of a key (`a > x` -> `x`)."""
    return key.rsplit(SCOPE_SEP, 1)[-1]


def scope_of(key: str) -> str:
    """The scope of a key: '' for the shared graph, else the key of the private copy's owner."""
    return key.rsplit(SCOPE_SEP, 1)[0] if SCOPE_SEP in key else ""


@dataclass(frozen=True)
class Requirement:
    """A dependency as the resolver sees it: the package id and what it accepts."""

    package: str  # the key: the package id, or `SCOPE > ID` for a private copy
    dependency: Dependency

    def __str__(self) -> str:
        dep = self.dependency
        if isinstance(dep, RegistryDependency):
            return f"{self.package} {dep.range}"
        return self.package


@dataclass(frozen=True)
class Candidate:
    """One concrete package: a registry version, a pinned url, a local directory, a commit."""

    package: str  # the key (see the module docstring)
    version: semver.Version | None
    kind: str = "registry"  # "registry" | "url" | "path" | "git"
    url: str = ""
    sha256: str = ""
    path: str = ""
    commit: str = ""
    tree: str = ""
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
        self._digests: dict[tuple[str, str], str] = {}
        self._git: dict[str, Candidate] = {}

    # -- requirements -------------------------------------------------------------------

    def requirements(
        self, deps: Iterable[Dependency], *, base: str = ".", owner: str = ""
    ) -> list[Requirement]:
        """Requirements for parsed dependencies declared by the package keyed `owner` ('' for
        the project); path dependencies resolve against `base`."""
        out = []
        for dep in deps:
            if isinstance(dep, PathDependency):
                rel = posixpath.normpath(posixpath.join(base, dep.path))
                dep = PathDependency(dep.name, rel)
            private = isinstance(dep, (RegistryDependency, GitDependency)) and dep.private
            scope = (owner or ROOT) if private else scope_of(owner)
            if scope:
                package = f"{scope}{SCOPE_SEP}{dep.package}"
            elif self.root_id and dep.package == self.root_id:
                package = ROOT
            else:
                package = dep.package
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
            cand = self._path_candidate(first, identifier)
            return [cand] if cand not in bad else []
        if isinstance(first, GitDependency):
            cand = self._git_candidate(first, identifier)
            ok = all(self.is_satisfied_by(r, cand) for r in reqs) and cand not in bad
            return [cand] if ok else []
        versions = self.available(real_id(identifier))
        interned = self._candidates.get(identifier)
        if interned is None:
            interned = self._candidates[identifier] = [Candidate(identifier, v) for v in versions]
        out = [c for c in interned if all(self._in_range(r, c) for r in reqs)]
        if not out:  # perhaps a version identical to an allowed one (version equivalence)
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
            if candidate.kind != "registry" or candidate.version is None:
                return False
            return dep.range.allows(candidate.version) or bool(
                self.equivalent(requirement, candidate)
            )
        if isinstance(dep, UrlDependency):
            return candidate.sha256 == dep.sha256 and candidate.url == dep.url
        return candidate.package == requirement.package

    @staticmethod
    def _in_range(requirement: Requirement, candidate: Candidate) -> bool:
        dep = requirement.dependency
        if isinstance(dep, RegistryDependency):
            return candidate.version is not None and dep.range.allows(candidate.version)
        return True

    def equivalent(self, requirement: Requirement, candidate: Candidate) -> str:
        """A version that `requirement` allows with the same content as `candidate` ('' = none)."""
        dep = requirement.dependency
        if not isinstance(dep, RegistryDependency) or candidate.version is None:
            return ""
        pid = real_id(candidate.package)
        mine = self.digest(pid, candidate.version_text)
        if not mine:
            return ""
        for v in self.available(pid):
            if v != candidate.version and dep.range.allows(v):
                if self.digest(pid, str(v)) == mine:
                    return str(v)
        return ""

    def digest(self, package_id: str, version: str) -> str:
        """The content digest of a version apart from its version, asked once ('' = unknown)."""
        key = (package_id, version)
        known = self._digests.get(key)
        if known is None:
            known = self._digests[key] = content_digest(self.source, package_id, version)
        return known

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
        versions = [v for v, _ in reversed(tag_versions(tags))]
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
        elif candidate.kind in ("path", "git"):
            reqs = candidate.dependencies
        else:
            pid = real_id(candidate.package)
            raw = self.source.metadata(pid, candidate.version_text)
            registry = pid.split("/", 1)[0]
            where = f"{pid}@{candidate.version_text}: dependencies"
            deps = parse_dependencies(raw, default_registry=registry, where=where)
            for dep in deps:
                if isinstance(dep, PathDependency):
                    raise ResolutionError(
                        f"{where}: published package declares path dependency {dep.name!r}",
                        hint="a published package may depend on registry or url packages only",
                    )
            reqs = tuple(self.requirements(deps, owner=candidate.package))
        self._deps[key] = reqs
        return reqs

    def _git_candidate(self, dep: GitDependency, key: str) -> Candidate:
        """The commit of a git dependency (the locked one while it is kept), read once."""
        known = self._git.get(key)
        if known is not None:
            return known
        found = git_package(self.source, dep, self.locked.get(key, ""))
        where = f"{dep.package}@{found.commit[:12]}: ebpm.toml"
        from ebpm.config import default_registry

        deps = parse_dependencies(
            found.dependencies, default_registry=default_registry(), where=f"{where} dependencies"
        )
        for d in deps:
            if isinstance(d, PathDependency):
                raise ResolutionError(
                    f"{where}: a git package declares path dependency {d.name!r}",
                    hint="a git package may depend on registry, url or git packages only",
                )
        try:
            version = parse_version(found.version)
        except ManifestError as err:
            raise ManifestError(f"{where}: {err.message}", hint=err.hint) from err
        cand = Candidate(
            key, version, "git", commit=found.commit, tree=found.tree,
            dependencies=tuple(self.requirements(deps, owner=key)),
        )
        self._git[key] = cand
        return cand

    def _path_candidate(self, dep: PathDependency, key: str) -> Candidate:
        from ebpm.package import ProjectManifest

        if self.project_root is None:
            raise ResolutionError(
                f"{dep.name}: path dependency {dep.path!r} needs a project directory"
            )
        try:
            manifest = ProjectManifest.load(self.project_root / dep.path)
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
        reqs = tuple(self.requirements(deps, base=dep.path, owner=key))
        return Candidate(
            key,
            parse_version(manifest.version),
            "path",
            path=dep.path,
            dependencies=reqs,
        )
