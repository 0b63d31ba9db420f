"""`ebpm lock` and `ebpm update`: resolve ebpm.toml's dependencies, fetch and verify the graph,
and write ebpm.lock with the digests and signers seen."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.deps.fetch import InstalledPackage, fetch_all
from ebpm.deps.project import DEFAULT_JOBS, Project, existing_lock, load_project
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.record import record, replace
from ebpm.resolver.lockfile import LockEntry, Lockfile

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.deps.source import RegistrySource
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import Dependency

__all__ = ["LockResult", "lock", "update"]


@record
class LockResult:
    lockfile: Lockfile
    path: Path
    written: bool  # the file changed (with write=False: would change)
    changes: tuple[tuple[str, str, str], ...]  # (key, old version, new version)
    packages: tuple[InstalledPackage, ...]
    equivalences: tuple[str, ...] = ()  # versions that stood for others (identical content)


def lock(
    directory: str | Path = ".",
    *,
    unlock: set[str] | None = None,
    access: RegistryAccess | None = None,
    allow_unsigned: bool = False,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
    project: Project | None = None,
    write: bool = True,
) -> LockResult:
    """Resolve, fetch and verify the graph, and write `ebpm.lock` (only if it changed).

    Versions in an existing lock are kept where they still fit, except for the packages in
    `unlock` (declared names or package ids; `{"*"}` unlocks everything). With
    `access.offline` everything comes from the store. `project`: lock that (an edit of
    ebpm.toml not yet written) instead of `directory`'s; `write=False`: return the lock
    without writing it (the caller writes ebpm.toml and then `result.lockfile`).
    """
    from ebpm.access import RegistryAccess
    from ebpm.deps.source import RegistrySource
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import spec_hash
    from ebpm.resolver.resolve import resolve

    project = project or load_project(directory)
    root, manifest, deps, registry = (project.root, project.manifest, project.dependencies,
                                      project.registry)
    path = project.lock_path
    store = store or Store()
    access = access or RegistryAccess.from_env()
    previous = existing_lock(path, tolerant=True)
    locked = previous.locked_versions() if previous else {}
    unlocked: set[str] = set()
    if unlock:
        unlocked = set(locked) if "*" in unlock else _ids(previous, deps, unlock)
        locked = {k: v for k, v in locked.items() if k not in unlocked}
    source = RegistrySource(store, access=access)
    _prefetch_git(source, deps, locked, jobs=jobs)
    resolution = resolve(
        deps, source, locked=locked, project_root=root,
        root=f"{manifest.name}@{manifest.version}", root_id=f"{registry}/{manifest.name}",
        registry=registry,
    )
    lockfile = Lockfile.from_resolution(resolution, spec_hash=spec_hash(deps))
    builds = _pin_git_all(
        [e for e in lockfile.packages if e.kind == "git"], store=store, offline=access.offline,
        previous=previous, unlocked=unlocked, jobs=jobs)
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
        elif entry.kind == "git":
            entry = builds[entry.key]
        elif entry.kind == "path":
            from ebpm.deps.paths import directory_digest

            entry = replace(entry, tree=directory_digest(root / entry.path))
        entries.append(entry)
    lockfile = Lockfile.create(lockfile.spec_hash, lockfile.dependencies, entries)
    pinned_before = {(e.key, e.url, e.sha256) for e in previous.packages} if previous else set()
    fresh_urls = frozenset(e.key for e in entries if e.kind == "url"
                           and (e.key, e.url, e.sha256) not in pinned_before)
    installed = fetch_all(
        lockfile, root, store=store, access=access, allow_unsigned=allow_unsigned,
        jobs=jobs, reporter=reporter, pinned_keys=False, fresh_urls=fresh_urls,
    )
    signers = {p.package: p.signed_by for p in installed}
    lockfile = Lockfile.create(
        lockfile.spec_hash, lockfile.dependencies,
        [replace(e, key_id=signers.get(e.package, "")) if e.kind == "registry" else e
         for e in lockfile.packages],
    )
    written = previous is None or previous.dumps() != lockfile.dumps()
    if written and write:
        lockfile.dump(path)
    before = {e.key: _shown(e) for e in previous.packages} if previous else {}
    after = {e.key: _shown(e) for e in lockfile.packages}
    changes = tuple(
        (pid, before.get(pid, ""), after.get(pid, ""))
        for pid in sorted(set(before) | set(after))
        if before.get(pid) != after.get(pid)
    )
    return LockResult(lockfile, path, written, changes, installed,
                      tuple(str(e) for e in resolution.equivalences))


def _prefetch_git(source: RegistrySource, deps: tuple[Dependency, ...],
                  locked: dict[str, str], *, jobs: int) -> None:
    """Fetch the project's git repositories whose head must be learnt, several at once."""
    from ebpm.deps.git import prefetch
    from ebpm.resolver.dependency import GitDependency

    if source.offline:
        return
    urls = sorted({d.git for d in deps if isinstance(d, GitDependency) and not d.private
                   and d.package not in locked})
    prefetch([source.git_repo(u) for u in urls], jobs=jobs)


def _shown(entry: LockEntry) -> str:
    """How a change shows a version: a git package with its commit, a url file by its sha256
    (never '', which means absent: added or removed)."""
    if entry.kind == "url":
        return f"sha256:{entry.sha256[:12]}"
    return f"{entry.version}@{entry.commit[:12]}" if entry.kind == "git" else entry.version


def _pin_git_all(entries: list[LockEntry], *, store: Store, offline: bool,
                 previous: Lockfile | None, unlocked: set[str], jobs: int
                 ) -> dict[str, LockEntry]:
    """Every git entry pinned to its build, the builds run `jobs` at a time."""
    def one(entry: LockEntry) -> LockEntry:
        return _pin_git(entry, store=store, offline=offline,
                        previous=None if entry.key in unlocked else previous)

    from ebpm.meanwhile import each

    return {e.key: pinned for e, pinned in zip(entries, each(one, entries, jobs), strict=True)}


def _pin_git(entry: LockEntry, *, store: Store, offline: bool,
             previous: Lockfile | None) -> LockEntry:
    """A git entry with the digests of its build (the store's, or built now)."""
    from ebpm.deps.git import ensure_built

    old = previous.get(entry.key) if previous else None
    want = old.manifest_digest if old and old.commit == entry.commit else ""
    built = ensure_built(store, entry.url, entry.subdir, entry.commit, want=want,
                         tree=entry.tree, offline=offline)
    return replace(entry, manifest_digest=built.digest, config_digest=built.config_digest,
                   layers=built.layers, tree=built.tree or entry.tree)


def _ids(previous: Lockfile | None, deps: tuple[Dependency, ...], names: set[str]) -> set[str]:
    """Package ids for declared names, ids, or repositories; unknown names are an error."""
    from ebpm.errors import UsageError

    out: set[str] = set()
    known = {d.name: d.package for d in deps}
    entries = list(previous.packages) if previous else []
    for name in names - {"*"}:
        if name in known:
            # the declared package, and every private copy of it below
            out |= {e.key for e in entries if e.package == known[name]} | {known[name]}
        elif any(name in (e.key, e.package) for e in entries):
            out |= {e.key for e in entries if name in (e.key, e.package)}
        else:
            matches = {e.key for e in entries if e.package.split("/", 1)[-1] == name}
            if not matches:
                raise UsageError(
                    f"update: {name!r} is not a dependency of this project",
                    hint="name a dependency from ebpm.toml or a package id from ebpm.lock",
                )
            out |= matches
    return out


def update(
    directory: str | Path = ".",
    names: tuple[str, ...] = (),
    *,
    access: RegistryAccess | None = None,
    allow_unsigned: bool = False,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
) -> LockResult:
    """Re-resolve ignoring the lock for `names` (every package when empty); write ebpm.lock."""
    return lock(directory, unlock=set(names) or {"*"}, access=access,
                allow_unsigned=allow_unsigned, jobs=jobs, store=store, reporter=reporter)
