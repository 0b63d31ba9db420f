"""A project: its directory (found from the current one upwards, as cargo finds Cargo.toml), and
as the dependency use cases see it: ebpm.toml's dependencies, ebpm.lock."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.errors import LockfileError, ManifestError
from ebpm.package import LOCK_FILE, MANIFEST_FILE
from ebpm.record import record

# (ebpm.resolver is imported where a lock is read: `ebpm run NAME` finds its project here)

if TYPE_CHECKING:
    from ebpm.package import ProjectManifest
    from ebpm.resolver.dependency import Dependency
    from ebpm.resolver.lockfile import Lockfile

__all__ = ["Project", "find_project", "project_root", "load_project", "edited_project",
           "existing_lock", "stale_reason", "DEFAULT_JOBS"]

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


def find_project(start: str | Path = ".") -> Path | None:
    """The nearest directory holding ebpm.toml or ebpm.lock: `start` or the first one above it
    (up to the filesystem root), resolved; None when there is none."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if (d / MANIFEST_FILE).is_file() or (d / LOCK_FILE).is_file():
            return d
    return None


def project_root(directory: str | Path | None) -> Path:
    """The project a command works on: `directory` exactly as given (never searched), or when it
    is None the nearest project from the current directory upwards (`find_project`), relative
    to the current directory (`.`, `..`, ...) so that the paths printed read from here."""
    if directory is not None:
        return Path(directory)
    import os

    here = Path.cwd()
    found = find_project(here)
    if found is None:
        raise ManifestError(
            f"no {MANIFEST_FILE} in {here} or any parent directory",
            hint="run it in a package's directory (or below it), or pass the directory; "
                 "`ebpm init NAME` starts a package",
        )
    return Path(os.path.relpath(found, here.resolve()))


def load_project(directory: str | Path) -> Project:
    from ebpm.package import ProjectManifest

    root = Path(directory)
    return _project(root, ProjectManifest.load(root))


def edited_project(project: Project, raw: bytes) -> Project:
    """`project` as it will be once ebpm.toml holds `raw` (an edit checked before it is
    written: `ebpm add` and `ebpm remove` lock it first)."""
    from ebpm.package import ProjectManifest

    return _project(project.root, ProjectManifest.loads(raw, root=project.root))


def _project(root: Path, manifest: ProjectManifest) -> Project:
    from ebpm import config
    from ebpm.resolver.dependency import parse_dependencies

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
    from ebpm.resolver.lockfile import Lockfile

    try:
        return Lockfile.load(path)
    except LockfileError:
        if tolerant:
            return None
        raise
