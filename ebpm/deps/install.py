"""The dependency use cases: lock, install, update, tree and outdated for a project directory.

`lock()` resolves `[dependencies]` of ebpm.toml against the registry (or, offline, the store),
fetches and verifies every package of the graph into the store, and writes `ebpm.lock` with
the digests and signers it saw. `install()` makes every package of the lock available offline,
checking each one against the digests (and signer) pinned in the lock; it resolves only when
the lock is missing or stale, unless `locked`/`frozen` forbid it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import (
    DigestMismatchError,
    LockfileError,
    OfflineError,
    SignatureError,
)
from ebpm.progress import NULL_REPORTER, Reporter
from ebpm.resolver.lockfile import LOCK_FILE, LockEntry, Lockfile

if TYPE_CHECKING:
    from ebpm.oci.layout import Store
    from ebpm.oci.model import Manifest
    from ebpm.oci.remote import Registry
    from ebpm.package import Manifest as ProjectManifest
    from ebpm.resolver.dependency import Dependency

__all__ = [
    "RegistrySource",
    "InstalledPackage",
    "LockResult",
    "InstallResult",
    "Outdated",
    "lock",
    "install",
    "update",
    "tree",
    "outdated",
    "DEFAULT_JOBS",
]

DEFAULT_JOBS = 8


class RegistrySource:
    """The resolver's `Source` over the registry and the store; offline, over the store only.

    Tag lists are cached in the store (so ranges resolve offline later); manifests are fetched
    once per version and config blobs once per digest.
    """

    def __init__(
        self, store: Store, *, offline: bool, insecure: bool = False,
        ca_bundle: str | None = None,
    ) -> None:
        self.store = store
        self.offline = offline
        self.insecure = insecure
        self.ca_bundle = ca_bundle
        self._manifests: dict[tuple[str, str], tuple[str, Manifest]] = {}
        self._configs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, registry: str) -> Registry:
        from ebpm.access import registry_for

        return registry_for(registry, insecure=self.insecure, ca_bundle=self.ca_bundle)

    def versions(self, package_id: str) -> list[str]:
        if self.offline:
            tags = self.store.get_tags(package_id)
            if tags is None:
                tags = [
                    e.tag for e in self.store.entries() if e.repository == package_id and e.tag
                ]
            if not tags:
                raise OfflineError(
                    f"{package_id}: no versions in the store (offline)",
                    hint="run `ebpm lock` or `ebpm install` once while online",
                )
            return tags
        registry, repository = package_id.split("/", 1)
        tags = self.client(registry).list_tags(repository)
        self.store.put_tags(package_id, tags)
        return tags

    def pin(self, package_id: str, version: str) -> tuple[str, Manifest]:
        """The manifest digest and manifest of `package_id` at `version` (fetched once)."""
        key = (package_id, version)
        known = self._manifests.get(key)
        if known is not None:
            return known
        from ebpm.oci.artifact import check_package_manifest
        from ebpm.oci.model import Manifest
        from ebpm.oci.reference import Reference, tag_from_version

        registry, repository = package_id.split("/", 1)
        tag = tag_from_version(version)
        where = f"{package_id}:{tag}"
        if self.offline:
            from ebpm.transfer.pull import find_cached

            desc = find_cached(self.store, Reference(registry, repository, tag))
            if desc is None:
                raise OfflineError(
                    f"{where}: not in the store (offline)",
                    hint="run `ebpm install` once while online",
                )
            digest = desc.digest
            _, manifest = self.store.read_manifest(digest, size=desc.size)
        else:
            data, _, digest = self.client(registry).get_manifest(repository, tag)
            manifest = Manifest.from_bytes(data, where=where)
        check_package_manifest(manifest, where=where)
        with self._lock:
            self._manifests[key] = (digest, manifest)
        return digest, manifest

    def config(self, package_id: str, version: str) -> Any:
        """The PackageConfig of `package_id` at `version` (config blobs cached by digest)."""
        from ebpm.package import PackageConfig

        _, manifest = self.pin(package_id, version)
        desc = manifest.config
        cached = self._configs.get(desc.digest)
        if cached is not None:
            return cached
        if self.store.has_blob(desc.digest):
            data = self.store.read_blob(desc.digest, size=desc.size)
        elif self.offline:
            raise OfflineError(
                f"{package_id}@{version}: config blob {desc.digest} not in the store"
            )
        else:
            registry, repository = package_id.split("/", 1)
            data = self.client(registry).get_blob(repository, desc.digest, size=desc.size)
        config = PackageConfig.from_json(data)
        if config.version != version:
            raise DigestMismatchError(
                f"{package_id}:{version}: config says version {config.version}",
                hint="the tag points at another version's package; ask its publisher",
            )
        self._configs[desc.digest] = config
        return config

    def metadata(self, package_id: str, version: str) -> Mapping[str, Any]:
        return self.config(package_id, version).dependencies  # type: ignore[no-any-return]

    def signature_digest(self, package_id: str, digest: str) -> str:
        """The digest of the cosign signature manifest of `digest` ('' when unsigned)."""
        from ebpm.transfer.pull import signature_tag

        found = self.store.resolve(f"{package_id}:{signature_tag(digest)}")
        if found is not None:
            return found.digest
        if self.offline:
            return ""
        registry, repository = package_id.split("/", 1)
        desc = self.client(registry).head_manifest(repository, signature_tag(digest))
        return desc.digest if desc is not None else ""


@dataclass(frozen=True)
class InstalledPackage:
    """One package made available: where it came from and what the trust check said."""

    package: str
    version: str
    kind: str
    digest: str  # manifest digest, or sha256:<hex> of a url object
    cached: bool  # it was already in the store
    signed_by: str = ""  # key id of the trusted signer ('' when unsigned or not required)


@dataclass(frozen=True)
class LockResult:
    lockfile: Lockfile
    path: Path
    written: bool  # the file changed
    changes: tuple[tuple[str, str, str], ...]  # (package, old version, new version)
    packages: tuple[InstalledPackage, ...]


@dataclass(frozen=True)
class InstallResult:
    lockfile: Lockfile
    path: Path
    resolved: bool  # the lock was (re)made first
    packages: tuple[InstalledPackage, ...]

    @property
    def fetched(self) -> int:
        return sum(1 for p in self.packages if not p.cached)


@dataclass(frozen=True)
class Outdated:
    package: str
    current: str
    wanted: str  # newest version every locked requirer accepts
    latest: str  # newest release


def _project(directory: str | Path) -> tuple[Path, ProjectManifest, tuple[Dependency, ...], str]:
    from ebpm import config
    from ebpm.package import Manifest
    from ebpm.resolver.dependency import parse_dependencies

    root = Path(directory)
    manifest = Manifest.load(root)
    registry = config.default_registry()
    where = f"{root / 'ebpm.toml'}: dependencies"
    deps = parse_dependencies(manifest.dependencies, default_registry=registry, where=where)
    return root, manifest, deps, registry


def _existing(path: Path, *, tolerant: bool = False) -> Lockfile | None:
    """The current lock, if any; `tolerant`: a damaged one counts as none (it is rewritten)."""
    if not path.exists():
        return None
    try:
        return Lockfile.load(path)
    except LockfileError:
        if tolerant:
            return None
        raise


def lock(
    directory: str | Path = ".",
    *,
    unlock: set[str] | None = None,
    offline: bool | None = None,
    allow_unsigned: bool = False,
    insecure: bool = False,
    ca_bundle: str | None = None,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> LockResult:
    """Resolve, fetch and verify the graph, and write `ebpm.lock` (only if it changed).

    Versions in an existing lock are kept where they still fit, except for the packages in
    `unlock` (declared names or package ids; `{"*"}` unlocks everything).
    """
    from ebpm import config as settings
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import spec_hash
    from ebpm.resolver.resolve import resolve

    root, manifest, deps, registry = _project(directory)
    path = root / LOCK_FILE
    store = store or Store()
    offline = settings.offline() if offline is None else offline
    previous = _existing(path, tolerant=True)
    locked = previous.locked_versions() if previous else {}
    if unlock:
        names = _ids(previous, deps, unlock)
        locked = {} if "*" in unlock else {k: v for k, v in locked.items() if k not in names}
    source = RegistrySource(store, offline=offline, insecure=insecure, ca_bundle=ca_bundle)
    resolution = resolve(
        deps, source, locked=locked, project_root=root,
        root=f"{manifest.name}@{manifest.version}", root_id=f"{registry}/{manifest.name}",
        registry=registry,
    )
    lockfile = Lockfile.from_resolution(resolution, spec_hash=spec_hash(deps))
    entries = []
    for entry in lockfile.packages:
        if entry.kind == "registry":
            digest, pinned = source.pin(entry.package, entry.version)
            entry = replace(
                entry,
                manifest_digest=digest,
                config_digest=pinned.config.digest,
                layers=tuple(d.digest for d in pinned.layers),
                signature_digest=source.signature_digest(entry.package, digest),
            )
        entries.append(entry)
    lockfile = Lockfile.create(lockfile.spec_hash, lockfile.dependencies, entries)
    installed = _fetch_all(
        lockfile, root, store=store, offline=offline, allow_unsigned=allow_unsigned,
        insecure=insecure, ca_bundle=ca_bundle, jobs=jobs, reporter=reporter, pinned_keys=False,
    )
    signers = {p.package: p.signed_by for p in installed}
    lockfile = Lockfile.create(
        lockfile.spec_hash, lockfile.dependencies,
        [replace(e, key_id=signers.get(e.package, "")) if e.kind == "registry" else e
         for e in lockfile.packages],
    )
    written = previous is None or previous.dumps() != lockfile.dumps()
    if written:
        lockfile.dump(path)
    before = {e.package: e.version for e in previous.packages} if previous else {}
    after = {e.package: e.version for e in lockfile.packages}
    changes = tuple(
        (pid, before.get(pid, ""), after.get(pid, ""))
        for pid in sorted(set(before) | set(after))
        if before.get(pid) != after.get(pid)
    )
    return LockResult(lockfile, path, written, changes, installed)


def _ids(previous: Lockfile | None, deps: tuple[Dependency, ...], names: set[str]) -> set[str]:
    """Package ids for declared names, ids, or repositories; unknown names are an error."""
    from ebpm.errors import UsageError

    out: set[str] = set()
    known = {d.name: d.package for d in deps}
    ids = {e.package for e in previous.packages} if previous else set()
    for name in names - {"*"}:
        if name in known:
            out.add(known[name])
        elif name in ids:
            out.add(name)
        else:
            matches = {i for i in ids if i.split("/", 1)[-1] == name}
            if not matches:
                raise UsageError(
                    f"update: {name!r} is not a dependency of this project",
                    hint="name a dependency from ebpm.toml or a package id from ebpm.lock",
                )
            out |= matches
    return out


def update(directory: str | Path = ".", names: tuple[str, ...] = (), **options: Any) -> LockResult:
    """Re-resolve ignoring the lock for `names` (every package when empty); write ebpm.lock."""
    return lock(directory, unlock=set(names) or {"*"}, **options)


def install(
    directory: str | Path = ".",
    *,
    locked: bool = False,
    frozen: bool = False,
    offline: bool | None = None,
    allow_unsigned: bool = False,
    insecure: bool = False,
    ca_bundle: str | None = None,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> InstallResult:
    """Make every package of the project's graph available in the store, verified.

    `locked`: fail when ebpm.lock is missing or stale instead of resolving again. `frozen`:
    install ebpm.lock exactly as written, with no resolution (ebpm.toml is optional; when it
    exists the lock must not be stale). `offline`: no network call; the store must hold it all.
    """
    from ebpm import config as settings
    from ebpm.oci.layout import Store

    root = Path(directory)
    path = root / LOCK_FILE
    store = store or Store()
    offline = settings.offline() if offline is None else offline
    if frozen and not (root / "ebpm.toml").exists():
        lockfile = Lockfile.load(path)
    else:
        _, manifest, _, registry = _project(root)
        previous = _existing(path)
        stale = previous is None or previous.is_stale(manifest, default_registry=registry)
        if (locked or frozen) and stale:
            why = "missing" if previous is None else "out of date with ebpm.toml"
            flag = "--frozen" if frozen else "--locked"
            raise LockfileError(
                f"{path}: {why} ({flag} forbids resolving again)",
                hint="run `ebpm lock` and commit ebpm.lock",
            )
        if stale or (previous is not None and previous.missing_digests()):
            result = lock(
                root, offline=offline, allow_unsigned=allow_unsigned, insecure=insecure,
                ca_bundle=ca_bundle, jobs=jobs, store=store, reporter=reporter,
            )
            return InstallResult(result.lockfile, path, True, result.packages)
        assert previous is not None
        lockfile = previous
    missing = lockfile.missing_digests()
    if missing:
        raise LockfileError(
            f"{path}: {missing[0]} has no pinned digest", hint="run `ebpm lock` to pin it"
        )
    installed = _fetch_all(
        lockfile, root, store=store, offline=offline, allow_unsigned=allow_unsigned,
        insecure=insecure, ca_bundle=ca_bundle, jobs=jobs, reporter=reporter, pinned_keys=True,
    )
    return InstallResult(lockfile, path, False, installed)


def _fetch_all(
    lockfile: Lockfile, root: Path, *, store: Store, offline: bool, allow_unsigned: bool,
    insecure: bool, ca_bundle: str | None, jobs: int, reporter: Reporter, pinned_keys: bool,
) -> tuple[InstalledPackage, ...]:
    """Fetch every entry with a bounded pool; progress counts packages done out of total."""
    entries = list(lockfile.packages)
    advance = reporter.task("packages", len(entries), unit="items")

    def one(entry: LockEntry) -> InstalledPackage:
        if entry.kind == "registry":
            got = _fetch_registry(entry, store=store, offline=offline,
                                  allow_unsigned=allow_unsigned, insecure=insecure,
                                  ca_bundle=ca_bundle, pinned_keys=pinned_keys)
        elif entry.kind == "url":
            got = _fetch_url(entry, store=store, offline=offline)
        else:
            got = _check_path(entry, root)
        advance(1)
        return got

    workers = max(1, min(jobs, len(entries)))
    if workers == 1:
        results = [one(e) for e in entries]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ebpm-fetch") as pool:
            results = list(pool.map(one, entries))
    reporter.done("packages")
    return tuple(results)


def _fetch_registry(
    entry: LockEntry, *, store: Store, offline: bool, allow_unsigned: bool, insecure: bool,
    ca_bundle: str | None, pinned_keys: bool,
) -> InstalledPackage:
    from ebpm.oci.reference import Reference
    from ebpm.transfer.pull import pull

    ref = Reference(entry.registry, entry.repository, entry.tag, entry.manifest_digest)
    # pull serves the store first and fetches again what is missing or damaged there
    pulled = pull(ref, prefer_cache=True, offline=offline, allow_unsigned=allow_unsigned,
                  insecure=insecure, ca_bundle=ca_bundle, store=store)
    where = f"{entry.package}:{entry.tag}"
    if pulled.digest != entry.manifest_digest:
        raise DigestMismatchError(
            f"{where}: got manifest {pulled.digest}, the lock pins {entry.manifest_digest}",
            hint="the tag was moved after locking; run `ebpm update` if that is intended",
        )
    layers = tuple(d.digest for d in pulled.manifest.layers)
    if pulled.manifest.config.digest != entry.config_digest or layers != entry.layers:
        raise DigestMismatchError(f"{where}: config or layers differ from the lock")
    if pulled.config.version != entry.version:
        raise DigestMismatchError(
            f"{where}: package says version {pulled.config.version}, the lock {entry.version}"
        )
    verification = pulled.verification
    signers = tuple(s.key_id for s in verification.signers) if verification else ()
    if pinned_keys and entry.key_id and entry.key_id not in signers:
        raise SignatureError(
            f"{where}: was signed by key {entry.key_id} when locked, now "
            + (f"by {', '.join(signers)}" if signers else "by no trusted key"),
            hint="check the trust policy (`ebpm trust`) or re-lock deliberately",
        )
    return InstalledPackage(
        entry.package, entry.version, "registry", pulled.digest, pulled.cached,
        signed_by=entry.key_id if entry.key_id in signers else (signers[0] if signers else ""),
    )


def _fetch_url(entry: LockEntry, *, store: Store, offline: bool) -> InstalledPackage:
    digest = f"sha256:{entry.sha256}"
    if store.has_blob(digest):
        store.read_blob(digest)  # verified on read
        return InstalledPackage(entry.package, "", "url", digest, True)
    if offline:
        raise OfflineError(
            f"{entry.url}: not in the store (offline)", hint="install once while online"
        )
    import requests

    from ebpm.errors import UnreachableError

    try:
        resp = requests.get(entry.url, timeout=(5, 30))
        resp.raise_for_status()
    except requests.RequestException as err:
        raise UnreachableError(f"{entry.url}: {err}") from err
    got = hashlib.sha256(resp.content).hexdigest()
    if got != entry.sha256:
        raise DigestMismatchError(
            f"{entry.url}: got sha256 {got}, want {entry.sha256}",
            hint="the file changed since it was pinned; nothing was stored",
        )
    with store.lock():
        store.write_blob(resp.content, digest)
    return InstalledPackage(entry.package, "", "url", digest, False)


def _check_path(entry: LockEntry, root: Path) -> InstalledPackage:
    target = root / entry.path
    if not (target / "ebpm.toml").exists():
        raise LockfileError(
            f"{entry.package}: {target} holds no ebpm.toml", hint="fix the path, then `ebpm lock`"
        )
    return InstalledPackage(entry.package, entry.version, "path", "", True)


def tree(directory: str | Path = ".") -> list[str]:
    """The locked graph as indented lines (no network): `name version (id)`, repeats marked."""
    from ebpm.package import Manifest
    from ebpm.resolver.tree import tree_lines

    root = Path(directory)
    lockfile = Lockfile.load(root / LOCK_FILE)
    label = root.name
    if (root / "ebpm.toml").exists():
        manifest = Manifest.load(root)
        label = f"{manifest.name} {manifest.version}"
    from ebpm import config

    return tree_lines(lockfile, label, registry=config.default_registry())


def outdated(
    directory: str | Path = ".", *, offline: bool | None = None, insecure: bool = False,
    ca_bundle: str | None = None, store: Store | None = None,
    on_package: Callable[[str], None] | None = None,
) -> list[Outdated]:
    """Locked registry packages with a newer version: the one the ranges allow, and the newest."""
    from ebpm import config as settings
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import RegistryDependency, parse_dependencies
    from ebpm.resolver.ranges import is_version, parse_range, parse_version

    root, _, deps, _ = _project(directory)
    lockfile = Lockfile.load(root / LOCK_FILE)
    store = store or Store()
    offline = settings.offline() if offline is None else offline
    source = RegistrySource(store, offline=offline, insecure=insecure, ca_bundle=ca_bundle)
    ranges: dict[str, list[Any]] = {}
    for dep in deps:
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
        tags = source.versions(entry.package)
        versions = sorted({parse_version(t.replace("_", "+")) for t in tags
                           if is_version(t.replace("_", "+"))})
        releases = [v for v in versions if v.prerelease is None] or versions
        wanted_all = [v for v in versions if all(r.allows(v) for r in ranges.get(entry.package, [
            parse_range("*")]))]
        latest = str(releases[-1]) if releases else entry.version
        wanted = str(wanted_all[-1]) if wanted_all else entry.version
        if entry.version != latest or entry.version != wanted:
            out.append(Outdated(entry.package, entry.version, wanted, latest))
    return out

