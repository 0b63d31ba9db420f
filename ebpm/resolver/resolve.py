"""Resolve a project's dependencies into one version per package, or explain why not.

`resolve()` runs resolvelib with the `Provider`, then checks the graph for cycles. Failures are
`ebpm.errors.ResolutionError` subclasses that say it in words: `DependencyCycleError` (the whole
loop), `VersionConflictError` (who wanted what), `NoMatchingVersionError` (the chain of
requirements that led to a missing package or an empty range).

A `Resolution` names packages by key (the package id, or `SCOPE > ID` for a private copy) and
lists the `Equivalence`s it relied on: a version that stands for another one a range allows,
because their contents are identical apart from the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep

try:  # resolvelib >= 1.1
    from resolvelib.resolvers.resolution import Resolution as _Resolution
except ImportError:  # pragma: no cover - resolvelib 1.0
    from resolvelib.resolvers import Resolution as _Resolution  # type: ignore[attr-defined,no-redef]

from ebpm.errors import (
    DependencyCycleError,
    NoMatchingVersionError,
    ResolutionError,
    VersionConflictError,
)
from ebpm.resolver.dependency import Dependency, RegistryDependency
from ebpm.resolver.greedy import greedy
from ebpm.resolver.provider import (
    ROOT,
    SCOPE_SEP,
    Candidate,
    Provider,
    Requirement,
    real_id,
    scope_of,
)
from ebpm.resolver.source import Source

__all__ = ["ResolvedPackage", "Resolution", "Equivalence", "resolve", "MAX_ROUNDS"]

MAX_ROUNDS = 1_000_000


@dataclass(frozen=True)
class ResolvedPackage:
    """One package of the result: its key, chosen version and the keys it depends on by name."""

    package: str  # the key: package id, or `SCOPE > ID` for a private copy
    version: str
    kind: str = "registry"  # "registry" | "url" | "path" | "git"
    dependencies: tuple[tuple[str, str], ...] = ()  # (declared name, key), sorted
    url: str = ""
    sha256: str = ""
    path: str = ""
    commit: str = ""
    tree: str = ""

    @property
    def package_id(self) -> str:
        return real_id(self.package)

    @property
    def scope(self) -> str:
        """'' in the shared graph; else the key of the package this private copy belongs to."""
        return scope_of(self.package)


@dataclass(frozen=True)
class Equivalence:
    """`requirer` wanted `package` in `range`; `version` was chosen, identical to `allowed`."""

    package: str  # key
    version: str
    allowed: str
    range: str
    requirer: str  # shown as in messages: app@0.1.0, a@1.0.0
    digest: str
    shown: str = ""  # the package as messages show it (short in the default registry)

    def __str__(self) -> str:
        return (
            f"{self.shown or self.package} {self.version} stands for {self.allowed}: "
            f"identical content apart from the version ({self.digest[:19]}…), "
            f"so it meets {self.requirer}'s {self.range}"
        )


@dataclass(frozen=True)
class Resolution:
    """The resolved graph: the root's dependencies and every package, sorted by key."""

    roots: tuple[tuple[str, str], ...]
    packages: tuple[ResolvedPackage, ...]
    equivalences: tuple[Equivalence, ...] = ()

    def get(self, package: str) -> ResolvedPackage | None:
        return next((p for p in self.packages if p.package == package), None)

    def versions(self) -> dict[str, str]:
        return {p.package: p.version for p in self.packages}


def resolve(
    dependencies: Iterable[Dependency],
    source: Source,
    *,
    locked: Mapping[str, str] | None = None,
    project_root: Path | None = None,
    root: str = "root",
    root_id: str = "",
    registry: str = "",
    reporter: BaseReporter | None = None,  # type: ignore[type-arg]
    fast: bool = True,
) -> Resolution:
    """Pick one version per package so that every requirement holds.

    `locked` ({key: version}, for git keys {key: commit}) is preferred where it still fits
    (a locked commit is kept as it is). `root` names the project
    in messages (e.g. "mytool@1.0.0"); `root_id` is its own package id, so that a dependency
    back onto the project is reported as a cycle. Package ids of `registry` are shown short.
    `fast=False` skips the linear first pass (`greedy`) and runs resolvelib alone.
    """
    provider = Provider(source, locked=locked, project_root=project_root, root_id=root_id)
    reqs = provider.requirements(dependencies)
    names = _Names(root, registry)
    if any(r.package == ROOT for r in reqs):
        raise DependencyCycleError((root, root), hint="a package cannot depend on itself")
    reporter = reporter or BaseReporter()
    found = greedy(provider, reqs, reporter) if fast else None
    if found is None:
        provider.parent.clear()
        try:
            state = _Resolution(provider, reporter).resolve(reqs, max_rounds=MAX_ROUNDS)
        except ResolutionImpossible as err:
            raise _explain(err, provider, names) from None
        except ResolutionTooDeep as err:
            raise ResolutionError(
                f"resolution: gave up after {err.round_count} rounds",
                hint="pin some dependencies to exact versions",
            ) from None
        found = _reachable(provider, reqs, dict(state.mapping))
    mapping: dict[str, Candidate] = found
    packages = []
    for pid in sorted(mapping):
        cand = mapping[pid]
        deps = provider.dependencies_of(cand)
        packages.append(
            ResolvedPackage(
                package=pid,
                version=cand.version_text,
                kind=cand.kind,
                dependencies=tuple(sorted((r.dependency.name, r.package) for r in deps)),
                url=cand.url,
                sha256=cand.sha256,
                path=cand.path,
                commit=cand.commit,
                tree=cand.tree,
            )
        )
    roots = tuple(sorted((r.dependency.name, r.package) for r in reqs))
    resolution = Resolution(
        roots=roots, packages=tuple(packages),
        equivalences=_equivalences(provider, reqs, mapping, names),
    )
    cycle = find_cycle(resolution)
    if cycle:
        shown = tuple(names.node(pid, mapping) for pid in cycle)
        raise DependencyCycleError(
            shown, hint="break the loop: one of these packages must stop depending on the next"
        )
    return resolution


def _equivalences(
    provider: Provider, reqs: list[Requirement], mapping: Mapping[str, Candidate], names: _Names
) -> tuple[Equivalence, ...]:
    """Every requirement of the final graph met only through an identical version."""
    out = []
    edges: list[tuple[Candidate | None, Requirement]] = [(None, r) for r in reqs]
    for pid in sorted(mapping):
        edges += [(mapping[pid], r) for r in provider.dependencies_of(mapping[pid])]
    for parent, req in edges:
        dep = req.dependency
        cand = mapping.get(req.package)
        if cand is None or not isinstance(dep, RegistryDependency) or cand.version is None:
            continue
        if dep.range.allows(cand.version):
            continue
        allowed = provider.equivalent(req, cand)
        if allowed:
            out.append(Equivalence(
                package=req.package, version=cand.version_text, allowed=allowed,
                range=str(dep.range), requirer=names.candidate(parent),
                digest=provider.digest(real_id(req.package), cand.version_text),
                shown=names.package(req.package),
            ))
    return tuple(sorted(set(out), key=lambda e: (e.package, e.requirer, e.range)))


def _reachable(
    provider: Provider, reqs: list[Requirement], mapping: dict[str, Candidate]
) -> dict[str, Candidate]:
    """The pins reachable from the root. (resolvelib's own result builder recurses without
    bound on cyclic graphs, so the final state is taken and pruned here instead.)"""
    seen: dict[str, Candidate] = {}
    stack = [r.package for r in reqs]
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in mapping:
            continue
        seen[pid] = mapping[pid]
        stack.extend(r.package for r in provider.dependencies_of(mapping[pid]))
    return seen


def find_cycle(resolution: Resolution) -> list[str]:
    """A loop in the graph as package ids (first == last), or [] when there is none."""
    edges: dict[str, list[str]] = {ROOT: sorted({pid for _, pid in resolution.roots})}
    for p in resolution.packages:
        edges[p.package] = sorted({pid for _, pid in p.dependencies})
    white, grey, black = 0, 1, 2
    color: dict[str, int] = {}
    # Iterative DFS: recursion would overflow on deep chains.
    for start in [ROOT, *sorted(edges)]:
        if color.get(start, white) != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        color[start] = grey
        while stack:
            node, i = stack[-1]
            nexts = edges.get(node, [])
            if i < len(nexts):
                stack[-1] = (node, i + 1)
                nxt = nexts[i]
                state = color.get(nxt, white)
                if state == grey:
                    return path[path.index(nxt) :] + [nxt]
                if state == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return []


class _Names:
    """How packages appear in messages: short for the default registry, with @version."""

    def __init__(self, root: str, registry: str) -> None:
        self.root = root
        self.prefix = f"{registry}/" if registry else ""

    def package(self, pid: str) -> str:
        if SCOPE_SEP in pid:
            return SCOPE_SEP.join(self.package(part) for part in pid.split(SCOPE_SEP))
        if pid == ROOT:
            return self.root.split("@", 1)[0]
        if self.prefix and pid.startswith(self.prefix):
            return pid[len(self.prefix) :]
        return pid

    def candidate(self, cand: Candidate | None) -> str:
        if cand is None:
            return self.root
        name = self.package(cand.package)
        return f"{name}@{cand.version_text}" if cand.version_text else name

    def node(self, pid: str, mapping: Mapping[str, Candidate]) -> str:
        if pid == ROOT:
            return self.root
        return self.candidate(mapping[pid])


def _chain(provider: Provider, parent: Candidate | None, names: _Names) -> list[str]:
    """root -> a@1.0.0 -> parent: how `parent` came to be in the graph."""
    chain: list[str] = []
    seen: set[str] = set()
    node = parent
    while node is not None and node.package not in seen:
        seen.add(node.package)
        chain.append(names.candidate(node))
        node = provider.parent.get(node.package)
    chain.append(names.root)
    return chain[::-1]


def _wanted(req: Requirement) -> str:
    dep = req.dependency
    if isinstance(dep, RegistryDependency):
        return str(dep.range)
    return dep.to_dict().get("sha256", "") or dep.to_dict().get("path", "")


def _dead_end(
    provider: Provider, req: Requirement, parent: Candidate | None, names: _Names
) -> NoMatchingVersionError | None:
    """The error for a requirement that no published version can meet, else None."""
    pid = req.package
    chain = _chain(provider, parent, names)
    shown = names.package(pid)
    text = " -> ".join([*chain, f"{shown} {_wanted(req)}"])
    if real_id(pid) in provider.missing:
        return NoMatchingVersionError(
            f"package {shown} not found: required by {text}",
            package=pid, range=_wanted(req), chain=tuple(chain),
            hint=provider.missing[real_id(pid)].hint or f"check the name, or publish {pid}",
        )
    dep = req.dependency
    if isinstance(dep, RegistryDependency):
        available = provider.available(real_id(pid))
        if not any(dep.range.allows(v) for v in available):
            listed = ", ".join(str(v) for v in sorted(available)[-8:]) or "none"
            return NoMatchingVersionError(
                f"no version of {shown} matches {dep.range}: required by {text} "
                f"(available: {listed})",
                package=pid, range=str(dep.range), chain=tuple(chain),
                hint="widen the range, or publish a matching version",
            )
    return None


def _explain(
    err: ResolutionImpossible,  # type: ignore[type-arg]
    provider: Provider,
    names: _Names,
) -> ResolutionError:
    causes = list(err.causes)
    by_package: dict[str, list[tuple[Requirement, Candidate | None]]] = {}
    for info in causes:
        by_package.setdefault(info.requirement.package, []).append((info.requirement, info.parent))
    # A missing package or a range nothing satisfies is the root of the trouble: name every
    # one met (in the final causes first, then during the search), with its chain.
    found: list[NoMatchingVersionError] = []
    pending = [(req, parent) for pid in sorted(by_package) for req, parent in by_package[pid]]
    pending += [(req, provider.required_by.get(id(req))) for req in provider.dead_ends]
    for req, parent in pending:
        dead = _dead_end(provider, req, parent, names)
        if dead is not None and all(d.message != dead.message for d in found):
            found.append(dead)
    if found:
        first = found[0]
        if len(found) > 1:
            also = "; ".join(d.message for d in found[1:4])
            first.message = f"{first.message}; also {also}"
            first.args = (first.message,)
        return first
    pid = sorted(by_package, key=lambda p: (-len(by_package[p]), p))[0]
    shown = names.package(pid)
    wanted = []
    lines = []
    for req, parent in by_package[pid]:
        who = " -> ".join(_chain(provider, parent, names))
        wanted.append((names.candidate(parent), _wanted(req)))
        lines.append(f"{who} wants {shown} {_wanted(req)}")
    extra = ""
    if isinstance(by_package[pid][0][0].dependency, RegistryDependency):
        listed = ", ".join(str(v) for v in sorted(provider.available(real_id(pid)))[-8:])
        extra = f" (available: {listed or 'none'})"
    return VersionConflictError(
        f"conflicting requirements for {shown}: " + "; ".join(lines) + extra,
        package=pid,
        wanted=tuple(wanted),
        hint="relax one of these ranges, or update the package that asks for the older one",
    )
