"""A project directory as the dependency use cases see it: ebpm.toml's dependencies, ebpm.lock."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.errors import LockfileError
from ebpm.record import record
from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

if TYPE_CHECKING:
    from ebpm.package import ProjectManifest
    from ebpm.resolver.dependency import Dependency

__all__ = ["Project", "load_project", "existing_lock", "stale_reason", "DEFAULT_JOBS"]

# packages fetched in parallel: a fetch mostly waits on the registry; a 50-package install
# --frozen on 2 shared cores took 0.99-1.15x crane's time with 16, 1.13-1.42x with 8 (A/B,
# medians of 9, load 2.5-3.4)
DEFAULT_JOBS = 16


@record
class Project:
    """ebpm.toml of `root`, its parsed dependencies, and the registry short names resolve to."""

    root: Path
    manifest: ProjectManifest
    dependencies: tuple[Dependency, ...]
    registry: str

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE


def load_project(directory: str | Path) -> Project:
    from ebpm import config
    from ebpm.package import ProjectManifest
    from ebpm.resolver.dependency import parse_dependencies

    root = Path(directory)
    manifest = ProjectManifest.load(root)
    registry = config.default_registry()
    where = f"{root / 'ebpm.toml'}: dependencies"
    deps = parse_dependencies(manifest.dependencies, default_registry=registry, where=where)
    return Project(root, manifest, deps, registry)


def stale_reason(project: Project, lockfile: Lockfile) -> str:
    """Why `lockfile` no longer fits the project ('' when it does): a path package's files
    changed since it was locked, or ebpm.toml declares other dependencies than it pins."""
    if any(e.kind == "path" for e in lockfile.packages):
        from ebpm.deps.paths import stale_paths  # hashes directories, imports git's helpers

        changed = stale_paths(lockfile, project.root)
        if changed:
            return f"stale: path package {changed[0]} changed since it was locked"
    if lockfile.is_stale(project.manifest, default_registry=project.registry):
        return "out of date with ebpm.toml"
    return ""


def existing_lock(path: Path, *, tolerant: bool = False) -> Lockfile | None:
    """The current lock, if any; `tolerant`: a damaged one counts as none (it is rewritten)."""
    if not path.exists():
        return None
    try:
        return Lockfile.load(path)
    except LockfileError:
        if tolerant:
            return None
        raise
