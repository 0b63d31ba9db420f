"""Check a package's `[dependencies]` before it is built or published: whatever a consumer could
not resolve is refused here, not discovered by every consumer's `ebpm lock`.

Without a source (the build) the table must parse with the rules a consumer applies (ranges,
url with sha256) and declare no path dependency; with a source (publish, push) every registry
dependency must exist in its registry with a version in range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ebpm.errors import ManifestError, NotFoundError
from ebpm.resolver.dependency import (
    Dependency,
    PathDependency,
    RegistryDependency,
    parse_dependencies,
)
from ebpm.resolver.source import Source

__all__ = ["check_publishable"]


def check_publishable(
    raw: Mapping[str, Any] | None, *, registry: str, where: str, source: Source | None = None
) -> tuple[Dependency, ...]:
    """The parsed dependencies of a package about to be published to `registry`, or
    ManifestError naming the first one a consumer could not resolve."""
    deps = parse_dependencies(raw, default_registry=registry, where=f"{where}: dependencies")
    for dep in deps:
        if isinstance(dep, PathDependency):
            raise ManifestError(
                f"{where}: dependencies.{dep.name}: a path dependency ({dep.path}) cannot be "
                "published",
                hint="publish that package and depend on it by version, or use a git dependency",
            )
    if source is None:
        return deps
    from ebpm.versions import tag_versions

    for dep in deps:
        if not isinstance(dep, RegistryDependency):
            continue
        try:
            tags = source.versions(dep.package)
        except NotFoundError as err:
            raise ManifestError(
                f"{where}: dependencies.{dep.name}: {dep.package} does not exist in its registry",
                hint=f"publish {dep.package} first, or fix the name (consumers would fail "
                "to lock)",
            ) from err
        versions = [v for v, _ in tag_versions(tags)]
        if not any(dep.range.allows(v) for v in versions):
            listed = ", ".join(str(v) for v in versions[-8:]) or "none"
            raise ManifestError(
                f"{where}: dependencies.{dep.name}: no published version of {dep.package} "
                f"matches {dep.range} (available: {listed})",
                hint="widen the range, or publish a matching version first",
            )
    return deps
