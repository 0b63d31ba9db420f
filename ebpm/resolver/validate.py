"""Check a package's `[dependencies]` before it is built or published: whatever a consumer could
not resolve is refused here, not discovered by every consumer's `ebpm lock`.

The build checks that the table parses with the rules a consumer applies (ranges, url with
sha256); push and publish also refuse path dependencies and ask a `Source` (the registry's tag
lists) that every registry dependency exists with a version in range. Pure: the caller brings
the source.
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
    raw: Mapping[str, Any] | None, *, registry: str, where: str, source: Source | None = None,
    allow_path: bool = False,
) -> tuple[Dependency, ...]:
    """The parsed dependencies of a package about to be published to `registry`, or
    ManifestError naming the first one a consumer could not resolve. `allow_path`: a local
    build (path dependencies resolve in the project, not for consumers)."""
    deps = parse_dependencies(raw, default_registry=registry, where=f"{where}: dependencies")
    for dep in deps:
        if isinstance(dep, PathDependency) and not allow_path:
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
