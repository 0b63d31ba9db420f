"""`ebpm outdated`: locked registry packages with a newer version, in range and overall, and git
packages whose ref moved past the locked commit.

Offline, versions come from the tag lists cached in the store and git refs from the store's
copy of each repository; the report says so, with the age of the oldest list it read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.deps.project import load_project, stale_reason
from ebpm.errors import LockfileError, OfflineError
from ebpm.resolver.lockfile import Lockfile

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import GitDependency
    from ebpm.resolver.ranges import Range

__all__ = ["Outdated", "OutdatedReport", "outdated", "check_outdated"]


@dataclass(frozen=True)
class Outdated:
    package: str
    current: str
    wanted: str  # newest version every locked requirer accepts
    latest: str  # newest release


@dataclass(frozen=True)
class OutdatedReport:
    rows: tuple[Outdated, ...]
    offline: bool  # read from the store's cached tag lists and git copies
    cached_since: float | None = None  # offline: when the oldest tag list read was cached
    git: bool = False  # git refs were read (offline: from the store's copies)
    unchecked: tuple[str, ...] = ()  # offline: git packages whose ref the store's copy lacks


def outdated(
    directory: str | Path = ".", *, access: RegistryAccess | None = None,
    store: Store | None = None, on_package: Callable[[str], None] | None = None,
) -> list[Outdated]:
    """Locked packages with a newer version: the one the ranges allow, and the newest."""
    return list(check_outdated(directory, access=access, store=store,
                               on_package=on_package).rows)


def check_outdated(
    directory: str | Path = ".", *, access: RegistryAccess | None = None,
    store: Store | None = None, on_package: Callable[[str], None] | None = None,
) -> OutdatedReport:
    """Locked registry packages with a newer version: the one the ranges allow, and the newest;
    git packages whose branch (tag, rev) now names another commit."""
    from ebpm.access import RegistryAccess
    from ebpm.deps.source import RegistrySource
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import GitDependency, RegistryDependency, parse_dependencies
    from ebpm.resolver.ranges import parse_range
    from ebpm.versions import latest_release, tag_versions

    project = load_project(directory)
    lockfile = Lockfile.load(project.lock_path)
    stale = stale_reason(project, lockfile)
    if stale:  # its versions would be measured against ranges it was not locked with
        raise LockfileError(f"{project.lock_path}: {stale}",
                            hint="run `ebpm lock` first: outdated measures the locked versions")
    store = store or Store()
    access = access or RegistryAccess.from_env()
    source = RegistrySource(store, access=access)
    # the ranges that apply to each lock key (a private copy: only its owner's)
    ranges: dict[str, list[Range]] = {}
    # the git spec (url and ref) behind each git lock key: the project's, or its requirer's
    git_specs: dict[str, GitDependency] = {}
    roots = dict(lockfile.dependencies)
    for dep in project.dependencies:
        if isinstance(dep, RegistryDependency) and dep.name in roots:
            ranges.setdefault(roots[dep.name], []).append(dep.range)
        elif isinstance(dep, GitDependency) and dep.name in roots:
            git_specs.setdefault(roots[dep.name], dep)
    for entry in lockfile.packages:
        if not entry.dependencies or entry.kind not in ("registry", "git"):
            continue
        keys = dict(entry.dependencies)
        if entry.kind == "git":  # its build in the store says what it declared
            raw = _built_dependencies(store, entry.config_digest)
            registry = project.registry
        else:
            raw = dict(source.metadata(entry.package, entry.version))
            registry = entry.registry
        for dep in parse_dependencies(raw, default_registry=registry):
            if isinstance(dep, RegistryDependency) and dep.name in keys:
                ranges.setdefault(keys[dep.name], []).append(dep.range)
            elif isinstance(dep, GitDependency) and dep.name in keys:
                git_specs.setdefault(keys[dep.name], dep)
    out = []
    ages = []
    unchecked: list[str] = []
    for entry in lockfile.packages:
        if entry.kind == "git":
            spec = git_specs.get(entry.key)
            if spec is None:
                continue
            if on_package is not None:
                on_package(entry.package)
            try:
                head = source.git(spec, "")
            except OfflineError:
                unchecked.append(entry.key)  # e.g. installed from `ebpm save --locked`
                continue
            if head.commit != entry.commit:
                now = f"{entry.version}@{entry.commit[:12]}"
                moved = f"{head.version}@{head.commit[:12]}"
                out.append(Outdated(entry.key, now, moved, moved))
            continue
        if entry.kind != "registry":
            continue
        if on_package is not None:
            on_package(entry.package)
        versions = [v for v, _ in tag_versions(source.versions(entry.package))]
        if access.offline:
            ages.append(store.tags_cached_at(entry.package) or 0.0)
        allowing = ranges.get(entry.key, [parse_range("*")])
        wanted_all = [v for v in versions if all(r.allows(v) for r in allowing)]
        newest = latest_release(versions)
        latest = str(newest) if newest is not None else entry.version
        wanted = str(wanted_all[-1]) if wanted_all else entry.version
        if entry.version != latest or entry.version != wanted:
            out.append(Outdated(entry.key, entry.version, wanted, latest))
    return OutdatedReport(tuple(out), access.offline, min(ages) if ages else None,
                          git=bool(git_specs), unchecked=tuple(unchecked))


def _built_dependencies(store: Store, config_digest: str) -> dict[str, object]:
    from ebpm.package import PackageConfig

    if not config_digest or not store.has_blob(config_digest):
        return {}
    return dict(PackageConfig.from_json(store.read_blob(config_digest)).dependencies)
