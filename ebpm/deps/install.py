"""`ebpm install`: make every package of a project's lock available in the store, verified.

It resolves (through `lock`) only when ebpm.lock is missing or stale, unless `locked`/`frozen`
forbid it; every package is checked against the digests (and signer) pinned in the lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.deps.fetch import InstalledPackage, fetch_all
from ebpm.deps.project import DEFAULT_JOBS, existing_lock, load_project, stale_reason
from ebpm.errors import LockfileError
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.record import record
from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store

__all__ = ["InstallResult", "install"]


@record
class InstallResult:
    lockfile: Lockfile
    path: Path
    resolved: bool  # the lock was (re)made first
    packages: tuple[InstalledPackage, ...]

    @property
    def fetched(self) -> int:
        return sum(1 for p in self.packages if not p.cached)


def install(
    directory: str | Path = ".",
    *,
    locked: bool = False,
    frozen: bool = False,
    access: RegistryAccess | None = None,
    allow_unsigned: bool = False,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
) -> InstallResult:
    """Make every package of the project's graph available in the store, verified.

    `locked`: fail when ebpm.lock is missing or stale instead of resolving again. `frozen`:
    install ebpm.lock exactly as written, with no resolution (ebpm.toml is optional; when it
    exists the lock must not be stale). `access.offline`: no network call; the store must hold
    it all.
    """
    from ebpm.access import RegistryAccess
    from ebpm.deps.lock import lock
    from ebpm.oci.layout import Store

    root = Path(directory)
    path = root / LOCK_FILE
    store = store or Store()
    access = access or RegistryAccess.from_env()
    if frozen and not (root / "ebpm.toml").exists():
        lockfile = Lockfile.load(path)
    else:
        project = load_project(root)
        previous = existing_lock(path)
        if previous is not None and not allow_unsigned:
            _choose_hasher(previous, store)
        why = "missing" if previous is None else stale_reason(project, previous)
        stale = bool(why)
        if (locked or frozen) and stale:
            flag = "--frozen" if frozen else "--locked"
            raise LockfileError(
                f"{path}: {why} ({flag} forbids resolving again)",
                hint="run `ebpm lock` and commit ebpm.lock",
            )
        if stale or (previous is not None and previous.missing_digests()):
            result = lock(root, access=access, allow_unsigned=allow_unsigned, jobs=jobs,
                          store=store, reporter=reporter)
            return InstallResult(result.lockfile, path, True, result.packages)
        assert previous is not None
        lockfile = previous
    missing = lockfile.missing_digests()
    if missing:
        raise LockfileError(
            f"{path}: {missing[0]} has no pinned digest", hint="run `ebpm lock` to pin it"
        )
    installed = fetch_all(
        lockfile, root, store=store, access=access, allow_unsigned=allow_unsigned,
        jobs=jobs, reporter=reporter, pinned_keys=True,
    )
    return InstallResult(lockfile, path, False, installed)


def _choose_hasher(lockfile: Lockfile, store: Store) -> None:
    """A registry package of the lock that the store lacks will be fetched and its signature
    checked, which imports cryptography; its pull then makes every digest with cryptography's
    SHA-256 (ebpm.digests). Chosen here already, before the lock's spec_hash is computed: else
    that one digest would import hashlib, a second OpenSSL (~2 ms of the install's serial
    start). A store holding them all keeps hashlib (its install imports no cryptography)."""
    from ebpm.digests import hash_with_cryptography

    registry = [e for e in lockfile.packages if e.kind == "registry" and e.manifest_digest]
    if registry:  # (the index read once: outside a batch each store.find reads it again)
        stored = {(s.repository, s.descriptor.digest) for s in store.entries()}
        if any((f"{e.registry}/{e.repository}", e.manifest_digest) not in stored
               for e in registry):
            hash_with_cryptography()
