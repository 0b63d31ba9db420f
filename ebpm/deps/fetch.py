"""Make the packages of a lock available in the store, each checked against what the lock pins."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.digests import sha256_digest
from ebpm.errors import (
    BuildError,
    CompileError,
    DigestMismatchError,
    LockfileError,
    OfflineError,
    SignatureError,
)
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.record import record

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.resolver.lockfile import LockEntry, Lockfile
    from ebpm.trust.policy import Policy

__all__ = ["InstalledPackage", "fetch_all", "url_store_name"]


@record
class InstalledPackage:
    """One package made available: where it came from and what the trust check said."""

    package: str
    version: str
    kind: str
    digest: str  # manifest digest, or sha256:<hex> of a url object
    cached: bool  # it was already in the store
    signed_by: str = ""  # key id of the trusted signer ('' when unsigned or not required)


def fetch_all(
    lockfile: Lockfile, root: Path, *, store: Store, access: RegistryAccess,
    allow_unsigned: bool, jobs: int, pinned_keys: bool,
    reporter: ProgressReporter = NULL_REPORTER, fresh_urls: frozenset[str] = frozenset(),
) -> tuple[InstalledPackage, ...]:
    """Fetch every entry with a bounded pool; progress counts packages done out of total.

    `pinned_keys`: a registry package must still be signed by the key the lock names.
    `fresh_urls`: url entries (keys) pinned just now: fetched from their URL (online) even
    when the store holds their file, so that a lock never pins a URL that does not serve it.
    """
    # private copies of one package at one digest are fetched once
    seen: set[tuple[str, str, str]] = set()
    entries = []
    for e in lockfile.packages:
        ident = (e.kind, e.package, e.manifest_digest or e.commit or e.sha256 or e.path)
        if ident not in seen:
            seen.add(ident)
            entries.append(e)
    advance = reporter.task("packages", len(entries), unit="items")
    policy = None
    if any(e.kind == "registry" for e in entries):  # one reading of the trust policy for all
        from ebpm.trust.policy import load_policy

        policy = load_policy()

    def one(entry: LockEntry) -> InstalledPackage:
        if entry.kind == "registry":
            got = _fetch_registry(entry, store=store, access=access,
                                  allow_unsigned=allow_unsigned, pinned_keys=pinned_keys,
                                  policy=policy)
        elif entry.kind == "url":
            got = _fetch_url(entry, store=store, access=access,
                             fresh=entry.key in fresh_urls)
        elif entry.kind == "git":
            got = _fetch_git(entry, store=store, access=access)
        else:
            got = _check_path(entry, root)
        advance(1)
        return got

    from ebpm.meanwhile import each

    with store.batch():  # the index written once, files flushed together, at the end
        results = each(one, entries, jobs)
    reporter.done("packages")
    return tuple(results)


def _fetch_registry(
    entry: LockEntry, *, store: Store, access: RegistryAccess, allow_unsigned: bool,
    pinned_keys: bool, policy: Policy | None = None,
) -> InstalledPackage:
    from ebpm.oci.reference import Reference
    from ebpm.transfer.pull import pull

    ref = Reference(entry.registry, entry.repository, entry.tag, entry.manifest_digest)
    # pull serves the store first and fetches again what is missing or damaged there
    pulled = pull(ref, prefer_cache=True, access=access, allow_unsigned=allow_unsigned,
                  store=store, policy=policy)
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


def url_store_name(url: str, sha256: str) -> str:
    """The store's index name of a url dependency's file (kept by `cache prune`)."""
    where = sha256_digest(url.encode()).partition(":")[2][:16]
    return f"url.ebpm/{where}:{sha256}"


def _name_url_file(store: Store, url: str, digest: str, size: int) -> None:
    """Name the file in the store's index (a small manifest wrapping it, annotated with its
    URL), as pulled packages and git builds are named: `cache prune` keeps what is named."""
    from ebpm.oci.artifact import wrap_file
    from ebpm.oci.model import MANIFEST_V1, TITLE, URL_ANNOTATION, URL_FILE_TYPE, Descriptor

    name = url_store_name(url, digest.partition(":")[2])
    body, empty = wrap_file(digest, size, artifact_type=URL_FILE_TYPE,
                            annotations={TITLE: url})
    found = store.resolve(name)
    if found is not None and store.holds(found.digest, found.size):
        return
    with store.lock():
        store.write_blob(empty)
        wrapper = store.write_blob(body)
        store.tag(name, Descriptor(MANIFEST_V1, wrapper, len(body),
                                   annotations={URL_ANNOTATION: url},
                                   artifact_type=URL_FILE_TYPE))


def _fetch_url(entry: LockEntry, *, store: Store, access: RegistryAccess,
               fresh: bool = False) -> InstalledPackage:
    digest = f"sha256:{entry.sha256}"
    if store.has_blob(digest) and (access.offline or not fresh):
        data = store.read_blob(digest)  # verified on read
        _name_url_file(store, entry.url, digest, len(data))  # e.g. loaded unnamed
        return InstalledPackage(entry.package, "", "url", digest, True)
    if access.offline:
        raise OfflineError(
            f"{entry.url}: not in the store (offline)", hint="install once while online"
        )
    from ebpm.access import get_url

    data = get_url(entry.url, access)
    got = sha256_digest(data).partition(":")[2]
    if got != entry.sha256:
        raise DigestMismatchError(
            f"{entry.url}: got sha256 {got}, want {entry.sha256}",
            hint="the file changed since it was pinned; nothing was stored",
        )
    with store.lock():
        store.write_blob(data, digest)
    _name_url_file(store, entry.url, digest, len(data))
    return InstalledPackage(entry.package, "", "url", digest, False)


def _fetch_git(entry: LockEntry, *, store: Store, access: RegistryAccess) -> InstalledPackage:
    """The store's build of the pinned commit; else fetch (the store keeps the objects) and
    build it, and it must reproduce the digest the lock pins."""
    from ebpm.deps.git import ensure_built

    built = ensure_built(store, entry.url, entry.subdir, entry.commit,
                         want=entry.manifest_digest, tree=entry.tree, offline=access.offline)
    if built.version != entry.version:
        raise DigestMismatchError(
            f"{entry.package}: the build says version {built.version}, the lock {entry.version}"
        )
    return InstalledPackage(entry.package, entry.version, "git", built.digest, built.cached)


def _check_path(entry: LockEntry, root: Path) -> InstalledPackage:
    """A path package is there, and built (`ebpm build`) when its build is missing or old."""
    from ebpm.deps.paths import build_path

    target = root / entry.path
    if not (target / "ebpm.toml").exists():
        raise LockfileError(
            f"{entry.package}: {target} holds no ebpm.toml", hint="fix the path, then `ebpm lock`"
        )
    try:
        built = build_path(target)
    except BuildError as err:  # clang's lines name files of that package: say which one
        err.message = f"path dependency {entry.path}: {err.message}"
        if isinstance(err, CompileError):
            err.hint = (f"fix the source of {entry.path} (`ebpm build {entry.path}` builds it "
                        "alone), then run this command again")
        raise
    return InstalledPackage(entry.package, entry.version, "path", "", not built)
