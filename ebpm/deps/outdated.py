"""`ebpm outdated`: locked registry packages with a newer version, in range and overall."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.deps.project import load_project
from ebpm.resolver.lockfile import Lockfile

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.resolver.ranges import Range

__all__ = ["Outdated", "outdated"]


@dataclass(frozen=True)
class Outdated:
    package: str
    current: str
    wanted: str  # newest version every locked requirer accepts
    latest: str  # newest release


def outdated(
    directory: str | Path = ".", *, access: RegistryAccess | None = None,
    store: Store | None = None, on_package: Callable[[str], None] | None = None,
) -> list[Outdated]:
    """Locked registry packages with a newer version: the one the ranges allow, and the newest."""
    from ebpm.access import RegistryAccess
    from ebpm.deps.source import RegistrySource
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import RegistryDependency, parse_dependencies
    from ebpm.resolver.ranges import parse_range
    from ebpm.versions import latest_release, tag_versions

    project = load_project(directory)
    lockfile = Lockfile.load(project.lock_path)
    source = RegistrySource(store or Store(), access=access or RegistryAccess.from_env())
    ranges: dict[str, list[Range]] = {}
    for dep in project.dependencies:
        if isinstance(dep, RegistryDependency):
            ranges.setdefault(dep.package, []).append(dep.range)
    for entry in lockfile.packages:
        if entry.kind != "registry" or not entry.dependencies:
            continue
        raw = source.metadata(entry.package, entry.version)
        for dep in parse_dependencies(raw, default_registry=entry.registry):
            if isinstance(dep, RegistryDependency):
                ranges.setdefault(dep.package, []).append(dep.range)
    out = []
    for entry in lockfile.packages:
        if entry.kind != "registry":
            continue
        if on_package is not None:
            on_package(entry.package)
        versions = [v for v, _ in tag_versions(source.versions(entry.package))]
        allowing = ranges.get(entry.package, [parse_range("*")])
        wanted_all = [v for v in versions if all(r.allows(v) for r in allowing)]
        newest = latest_release(versions)
        latest = str(newest) if newest is not None else entry.version
        wanted = str(wanted_all[-1]) if wanted_all else entry.version
        if entry.version != latest or entry.version != wanted:
            out.append(Outdated(entry.package, entry.version, wanted, latest))
    return out
