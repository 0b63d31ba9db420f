"""Inside a project, a bare NAME means the version ebpm.lock pins: `ebpm run NAME` finds it here.

The project is the nearest directory upwards holding ebpm.toml or ebpm.lock (`find_project`).
NAME is a dependency name the project declares, or else the repository name of exactly one
package of the lock.
"""

from __future__ import annotations

from pathlib import Path

from ebpm.deps.project import find_project
from ebpm.errors import UsageError
from ebpm.package import LOCK_FILE
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ebpm.resolver.lockfile import LockEntry

__all__ = ["LockedPackage", "find_locked", "find_lockfile"]


@record
class LockedPackage:
    """What NAME stands for in a project: a registry reference by digest, or a stored build."""

    name: str
    entry: LockEntry
    lockfile: Path

    @property
    def reference(self) -> str:
        """registry/repository@digest for registry packages ('' otherwise)."""
        return f"{self.entry.package}@{self.entry.manifest_digest}" if (
            self.entry.kind == "registry" and self.entry.manifest_digest) else ""

    @property
    def origin(self) -> str:
        return f"{self.name} {self.entry.version} (locked in {self.lockfile})"


def find_lockfile(directory: str | Path) -> Path | None:
    """The ebpm.lock of the project around `directory` (the nearest one up holding ebpm.toml or
    ebpm.lock, as every project command finds it), if it has one."""
    root = find_project(directory)
    return root / LOCK_FILE if root is not None and (root / LOCK_FILE).is_file() else None


def find_locked(name: str, directory: str | Path) -> LockedPackage | None:
    """The locked package NAME stands for in the project around `directory`, or None (no
    project, or NAME is not in its lock)."""
    if not name or any(c in name for c in "/:@"):
        return None
    path = find_lockfile(directory)
    if path is None:
        return None
    from ebpm.resolver.lockfile import Lockfile  # (a project's: `ebpm run REF` reads none)

    lockfile = Lockfile.load(path)
    key = dict(lockfile.dependencies).get(name)
    if key is None:
        matches = [e for e in lockfile.packages if not e.scope and e.kind in ("registry", "git")
                   and _short(e) == name]
        if len(matches) > 1:
            raise UsageError(
                f"{name}: {len(matches)} packages of {path} are called that "
                f"({', '.join(e.package for e in matches)})",
                hint="run it by its full reference",
            )
        key = matches[0].key if matches else None
    entry = lockfile.get(key) if key else None
    if entry is None or entry.kind not in ("registry", "git"):
        return None
    return LockedPackage(name, entry, path)


def _short(entry: LockEntry) -> str:
    if entry.kind == "git":
        return entry.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return entry.package.rsplit("/", 1)[-1]


def read_built(entry: LockEntry) -> tuple[object, bytes, bytes | None, bytes | None]:
    """(PackageConfig, object, btf, wasm) of a git package built into the store at install,
    each blob verified on read."""
    from ebpm.errors import NotFoundError
    from ebpm.oci.layout import Store
    from ebpm.oci.model import BPF_OBJECT_TYPE, BTF_TYPE, WASM_TYPE
    from ebpm.package import PackageConfig

    store = Store()
    if not entry.manifest_digest or not store.has_blob(entry.manifest_digest):
        raise NotFoundError(
            f"{entry.package}: the build of commit {entry.commit[:12]} is not in the store",
            hint="run `ebpm install` in the project first",
        )
    _, manifest = store.read_manifest(entry.manifest_digest)
    config = PackageConfig.from_json(store.read_blob(manifest.config.digest,
                                                     size=manifest.config.size))

    def layer(media_type: str) -> bytes | None:
        d = manifest.layer(media_type)
        return store.read_blob(d.digest, size=d.size) if d is not None else None

    obj = layer(BPF_OBJECT_TYPE)
    if obj is None:
        raise NotFoundError(f"{entry.package}: the package has no BPF object layer")
    return config, obj, layer(BTF_TYPE), layer(WASM_TYPE)
