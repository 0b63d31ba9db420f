"""The dependency graph of indexed packages: what a version needs, and who needs a repository."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ebpm.errors import ManifestError

if TYPE_CHECKING:
    from ebpm.hub.index import IndexedVersion

__all__ = ["Edge", "dependencies_of"]


@dataclass(frozen=True)
class Edge:
    """One declared dependency: `repository` is registry/repository for registry packages."""

    name: str
    spec: str  # the version range, the URL or the path, as declared
    kind: str  # "registry", "url", "path" or "invalid"
    repository: str = ""


def dependencies_of(version: IndexedVersion) -> list[Edge]:
    """The version's [dependencies]; short names resolve against the registry it came from."""
    from ebpm.resolver.dependency import (
        PathDependency,
        RegistryDependency,
        UrlDependency,
        parse_dependency,
    )

    edges: list[Edge] = []
    for name in sorted(version.config.dependencies):
        raw = version.config.dependencies[name]
        try:
            dep = parse_dependency(name, raw, default_registry=version.registry)
        except ManifestError:
            edges.append(Edge(name, str(raw), "invalid"))
            continue
        if isinstance(dep, RegistryDependency):
            edges.append(Edge(name, dep.range.normalized(), "registry", dep.package))
        elif isinstance(dep, UrlDependency):
            edges.append(Edge(name, dep.url, "url"))
        elif isinstance(dep, PathDependency):
            edges.append(Edge(name, dep.path, "path"))
    return edges
