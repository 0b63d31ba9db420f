"""Refresh the hub's index from registries: list repositories, list tags, fetch new digests only.

A source names what to index:

    HOST                  every repository of the registry's catalog (/v2/_catalog, paginated)
    HOST/NAMESPACE/*      the catalog's repositories matching a glob (`*` one level, `**` any)
    HOST/REPOSITORY       one repository, for registries without a catalog (ghcr.io)

A version is fetched through the one pull path (`ebpm.transfer.pull.pull`) into the hub's own
store, so the bytes are verified and its signatures are checked against the trust policy exactly
as `ebpm pull` would; only its metadata, README and signature status go into the index. Digests
already indexed are never fetched again; a signature tag that appears, changes or disappears, or
a changed trust policy, re-checks only the signature.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ebpm.errors import (
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    RegistryError,
    TooLargeError,
    UnreachableError,
    UsageError,
)
from ebpm.hub.index import (
    SIGNED,
    UNSIGNED,
    UNTRUSTED,
    HubIndex,
    IndexedRepository,
    IndexedVersion,
    SignatureStatus,
    hub_dir,
    hub_lock,
    version_key,
)
from ebpm.progress import NULL_REPORTER, ProgressReporter

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.oci.reference import Reference
    from ebpm.oci.remote import Registry
    from ebpm.transfer.pull import PulledPackage
    from ebpm.trust.policy import Policy
    from ebpm.trust.verification import Verification

__all__ = ["Source", "RefreshResult", "parse_source", "refresh", "update", "forget",
           "MAX_README"]

MAX_README = 512 * 1024  # README text kept in the index (bytes); the rest is cut
WORKERS = 4  # repositories refreshed at once (requests wait on the registry, not on us)
_GLOB = set("*?")
_SOURCE_HINT = "write HOST[:PORT], HOST/NAMESPACE/* or HOST/REPOSITORY, e.g. localhost:5000/tools/*"


@dataclass(frozen=True)
class Source:
    """Where to look: a registry host and a repository glob ("" = the whole catalog)."""

    registry: str
    pattern: str = ""

    @property
    def repository(self) -> str:
        """The one repository this source names ('' for a catalog or a glob)."""
        return "" if not self.pattern or _GLOB & set(self.pattern) else self.pattern

    def selects(self, repository: str) -> bool:
        """True when `repository` (without the host) belongs to this source."""
        if not self.pattern:
            return True
        from ebpm.trust.policy import glob_match

        return glob_match(self.pattern, repository)

    def __str__(self) -> str:
        return f"{self.registry}/{self.pattern}" if self.pattern else self.registry


@dataclass
class RefreshResult:
    """What a refresh changed: version keys added and removed, repositories touched."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    resigned: list[str] = field(default_factory=list)  # signature status checked again
    skipped: list[str] = field(default_factory=list)  # not ebpm packages (with the reason)
    failed: list[str] = field(default_factory=list)  # "key: why", this time only (a cap...)
    repositories: set[str] = field(default_factory=set)  # registry/repository changed
    listed: int = 0  # repositories looked at
    fetched: int = 0  # versions pulled
    empty: list[str] = field(default_factory=list)  # sources that named no repository
    unreachable: list[str] = field(default_factory=list)  # "source: why", the others done
    refreshed: list[str] = field(default_factory=list)  # the sources asked, in order
    down: dict[str, UnreachableError] = field(default_factory=dict)  # registry -> why

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.resigned or self.repositories)

    def failure(self, *, built: bool = False) -> RegistryError | None:
        """What a refresh that did not do everything ends with (exit 1), else None: each
        registry that did not answer, named once, and the versions that could not be indexed
        this time (tried again by the next refresh, never remembered as skipped). `built`:
        `hub build --refresh` built the site anyway."""
        down = list(self.down.values())
        if down and not self.refreshed and not self.failed and not built and len(down) == 1:
            return down[0]  # the one registry asked is down: its own error, as `ebpm pull`'s
        causes = [err.message for err in down]
        if len(self.failed) == 1:
            causes.append(f"could not index {self.failed[0]}")
        elif self.failed:
            causes.append(f"could not index {len(self.failed)} versions, e.g. {self.failed[0]} "
                          "(--json lists them)")
        if not causes:
            return None
        hints = []
        if built:
            hints.append("the site was built from the index as last refreshed")
        if down:
            when = "it answers" if len(down) == 1 else "they answer"
            hints.append(
                f"the other sources were indexed; run again when {when} (a new source is "
                "remembered only once it does), or `ebpm hub forget SOURCE`" if self.refreshed
                else f"nothing was indexed; run again when {when}")
        if self.failed:
            hints.append("what failed is tried again by the next `ebpm hub refresh`")
        what = "hub build --refresh" if built else "hub refresh"
        error = UnreachableError if down else RegistryError
        return error(f"{what}: {'; '.join(causes)}", hint="; ".join(hints))


def parse_source(text: str) -> Source:
    """Parse HOST, HOST/NAMESPACE/* (a glob) or HOST/REPOSITORY; a path without a host is on
    $EBPM_REGISTRY."""
    from ebpm import config
    from ebpm.oci.reference import parse

    raw = text.strip().rstrip("/")
    if not raw or "://" in raw or "@" in raw:
        raise UsageError(f"source {text!r}: not a registry or repository", hint=_SOURCE_HINT)
    first, sep, rest = raw.partition("/")
    host_like = ":" in first or "." in first or first == "localhost"
    if not sep:
        if host_like:
            registry, pattern = first, ""
        else:
            registry, pattern = config.default_registry(), raw
    elif host_like:
        registry, pattern = first, rest
    else:
        registry, pattern = config.default_registry(), raw
    probe = pattern.replace("**", "x").replace("*", "x").replace("?", "x") or "x"
    try:
        checked = parse(f"{registry}/{probe}")
    except UsageError as err:
        raise UsageError(f"source {text!r}: {err.message}", hint=_SOURCE_HINT) from err
    if checked.tag:
        raise UsageError(f"source {text!r}: a source names repositories, not tags",
                         hint=_SOURCE_HINT)
    return Source(checked.registry, pattern)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hub_store() -> Store:
    from ebpm.oci.layout import Store

    return Store(hub_dir() / "store")


def refresh(
    index: HubIndex,
    sources: Sequence[Source],
    *,
    repositories: Iterable[str] | None = None,
    access: RegistryAccess | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
) -> RefreshResult:
    """Bring `index` up to date with `sources` (or only with `repositories`, given as
    registry/repository, as a registry notification names them). The caller saves the index."""
    from ebpm.access import RegistryAccess
    from ebpm.trust.policy import load_policy

    policy = load_policy()  # read once: every pull and check of this refresh uses it
    store = hub_store()
    result = RefreshResult()
    only = sorted(set(repositories)) if repositories is not None else None
    access = access or RegistryAccess.from_env()
    with store.batch():  # the store's index written once, its files flushed together
        for source in sources:
            err = result.down.get(source.registry)  # asked once per refresh
            if err is None:
                try:
                    _refresh_source(index, source, sources, only=only, access=access,
                                    store=store, policy=policy, reporter=reporter,
                                    result=result)
                    continue
                except UnreachableError as down:
                    err = result.down[source.registry] = down
            result.unreachable.append(f"{source}: {err.message}")  # the others go on
    index.drop_unreferenced()
    if result.removed:
        _prune_store(store, index)
    return result


def _refresh_source(index: HubIndex, source: Source, sources: Sequence[Source], *,
                    only: list[str] | None, access: RegistryAccess, store: Store,
                    policy: Policy, reporter: ProgressReporter,
                    result: RefreshResult) -> None:
    """One source's part of `refresh`."""
    client = access.client(source.registry)
    prefix = source.registry + "/"
    if only is not None:
        names = [n[len(prefix):] for n in only
                 if n.startswith(prefix) and source.selects(n[len(prefix):])]
    elif source.repository:
        names = [source.repository]
    else:
        names = [n for n in _catalog(client, source) if source.selects(n)]
        listed = {prefix + n for n in names}
        for gone in [r for r in index.repositories
                     if r.startswith(prefix) and source.selects(r[len(prefix):])
                     and r not in listed and not _claimed(r, sources, source)]:
            _forget(index, gone, result)
    advance = reporter.task(f"index {source}", len(names), unit="items")
    scan = functools.partial(_scan, access, store, source.registry,
                             known=dict(index.versions), skipped=frozenset(index.skipped),
                             policy=policy,
                             recorded={n: dict(r.signatures)
                                       for n, r in index.repositories.items()})

    def one(name: str) -> _Scan:
        scanned = scan(name)
        advance(1)
        return scanned

    from ebpm.meanwhile import each

    found = 0
    # each worker pulls in place (no threads of a pull's own), as an install's do
    for scanned in each(one, names, WORKERS):  # in order: the same index every time
        _apply(index, scanned, result)
        found += not scanned.gone
    if not found and only is None and source.pattern:  # (an empty catalog is fine)
        result.empty.append(str(source))
    reporter.done(f"index {source}")
    result.listed += len(names)
    result.refreshed.append(str(source))


def _prune_store(store: Store, index: HubIndex) -> None:
    """Forget, in the hub's store, the versions the index no longer has, and free their blobs."""
    live = {(v.repository, v.digest) for v in index.versions.values()}
    with store.lock():
        for entry in store.entries():
            digest = entry.descriptor.digest
            if entry.tag.startswith("sha256-"):  # a signature (or referrers) tag: its subject
                digest = "sha256:" + entry.tag[len("sha256-"):].split(".", 1)[0]
            if (entry.repository, digest) not in live:
                store.untag(entry.name)
        store.prune()


def _catalog(client: Registry, source: Source) -> list[str]:
    """The registry's repositories; one error with the way out when it lists none (ghcr.io)."""
    from ebpm.errors import RegistryError, UnreachableError

    try:
        return client.catalog()
    except UnreachableError:
        raise
    except RegistryError as err:
        raise RegistryError(
            f"hub refresh {source}: {source.registry} does not list its repositories to us "
            f"({err.message})",
            hint=f"name them one by one, `ebpm hub refresh {source.registry}/REPOSITORY` "
                 "(ghcr.io has no catalog), or `ebpm login` to an account that may list them",
            status=err.status, code=err.code,
        ) from err


def _claimed(repository: str, sources: Sequence[Source], current: Source) -> bool:
    """Another source names this repository explicitly (so the catalog not listing it is fine)."""
    return any(s is not current and s.repository and f"{s.registry}/{s.repository}" == repository
               for s in sources)


def _selected(name: str, sources: Sequence[Source]) -> bool:
    """registry/repository belongs to one of `sources`."""
    registry, _, repository = name.partition("/")
    return any(s.registry == registry and s.selects(repository) for s in sources)


def _forget(index: HubIndex, name: str, result: RefreshResult) -> None:
    repo = index.repositories.pop(name, None)
    if repo is None:
        return
    result.repositories.add(name)
    for digest in set(repo.tags.values()):
        key = version_key(name, digest)
        if key in index.versions:
            result.removed.append(key)


@dataclass
class _Scan:
    """What one repository's refresh found (made on a worker thread, applied on the caller's)."""

    name: str
    gone: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)
    added: dict[str, IndexedVersion] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    resigned: dict[str, SignatureStatus] = field(default_factory=dict)
    status_changed: bool = False
    fetched: int = 0


def _scan(access: RegistryAccess, store: Store, registry: str, repository: str,
          known: Mapping[str, IndexedVersion], skipped: AbstractSet[str],
          policy: Policy, recorded: Mapping[str, Mapping[str, str]]) -> _Scan:
    """List one repository's tags and fetch what `known` lacks; changes nothing shared.
    `recorded`: the signature manifests each repository had at the last refresh."""
    from ebpm.oci.reference import Reference
    from ebpm.oci.referrers import is_auxiliary_tag, referrers_tag
    from ebpm.oci.signature import signature_tag
    from ebpm.trust import discovery

    client = access.client(registry)
    scan = _Scan(f"{registry}/{repository}")
    previous = recorded.get(scan.name, {})
    try:
        tags = client.list_tags(repository)
    except NotFoundError:  # the repository is gone (or was never there)
        scan.gone = True
        return scan
    for tag in sorted(t for t in tags if not is_auxiliary_tag(t)):  # no .sig, referrer tags
        desc = client.head_manifest(repository, tag)
        if desc is None:
            continue  # deleted between listing and asking
        key = version_key(scan.name, desc.digest)
        if key in skipped or key in scan.skipped or key in scan.failed:
            continue
        if key not in known and key not in scan.added:
            package = _pull(Reference(registry, repository, tag=tag, digest=desc.digest),
                            access, store, policy, scan, key)
            if package is None:
                continue
            scan.added[key] = _version_of(package, scan.name, desc.size)
        scan.tags[tag] = desc.digest
    for digest in sorted(set(scan.tags.values())):
        # the signature manifests as the registry lists them (the .sig tag, the referrers),
        # recorded per repository: a change since the last refresh checks the signature again
        found = discovery.locate(client, repository, digest, tags=tags)
        sig_tag, ref_tag = signature_tag(digest), referrers_tag(digest)
        if found.legacy:
            scan.signatures[sig_tag] = found.legacy
        if found.referrers:
            scan.signatures[ref_tag] = ",".join(found.referrers)
        key = version_key(scan.name, digest)
        status = (scan.added.get(key) or known[key]).signature
        if key not in scan.added and any(
                previous.get(t, "") != scan.signatures.get(t, "") for t in (sig_tag, ref_tag)):
            # signed, re-signed or unsigned since: fetch again
            tag = next(t for t, d in sorted(scan.tags.items()) if d == digest)
            package = _pull(Reference(registry, repository, tag=tag, digest=digest), access,
                            store, policy, scan, key)
            if package is not None and package.verification is not None:
                scan.resigned[key] = _status(package.verification)
                scan.status_changed = True
            elif package is None:  # failed this time: as recorded, so the next one checks
                for t in (sig_tag, ref_tag):
                    if t in previous:
                        scan.signatures[t] = previous[t]
                    else:
                        scan.signatures.pop(t, None)
        elif status.policy != policy.fingerprint:  # the policy changed: check again, offline
            from ebpm.trust.verification import enforce

            verification = enforce(store, Reference(registry, repository), digest,
                                   allow_unsigned=True, policy=policy)
            scan.resigned[key] = _status(verification)
            scan.status_changed |= scan.resigned[key] != status
    return scan


def _apply(index: HubIndex, scan: _Scan, result: RefreshResult) -> None:
    name = scan.name
    if scan.gone:
        _forget(index, name, result)
        return
    for key, reason in scan.skipped.items():
        index.skipped[key] = reason
        result.skipped.append(f"{key}: {reason}")
    result.failed.extend(f"{key}: {reason}" for key, reason in scan.failed.items())
    for key, version in scan.added.items():
        index.with_version(version)
        result.added.append(key)
        result.repositories.add(name)
    for key, status in scan.resigned.items():
        index.replace_signature(key, status)
        result.resigned.append(key)
    if scan.status_changed:
        result.repositories.add(name)
    result.fetched += scan.fetched
    old = index.repositories.get(name)
    if old is None or old.tags != scan.tags or old.signatures != scan.signatures:
        result.repositories.add(name)
        removed = {version_key(name, d) for d in old.tags.values()} if old else set()
        removed -= {version_key(name, d) for d in scan.tags.values()}
        result.removed.extend(sorted(k for k in removed if k in index.versions))
    if scan.tags:
        index.repositories[name] = IndexedRepository(name, scan.tags, scan.signatures, _now())
    else:
        index.repositories.pop(name, None)


def _pull(reference: Reference, access: RegistryAccess, store: Store, policy: Policy,
          scan: _Scan, key: str) -> PulledPackage | None:
    """Pull one version into the hub's store (verified, signatures checked, unsigned allowed).
    None when it is not an ebpm package (remembered as skipped: its digest never changes) or
    failed this time (a size cap, bytes that did not match their digest: tried again next
    refresh)."""
    from ebpm.transfer.pull import pull

    try:
        package = pull(reference, access=access, store=store, allow_unsigned=True,
                       policy=policy, every_signature=True)  # the index lists every signer
    except (ManifestError, TooLargeError, DigestMismatchError) as err:
        # the key names the version already: not "KEY: REF@DIGEST: why"
        reason = err.message.removeprefix(f"{reference}: ")
        (scan.skipped if isinstance(err, ManifestError) else scan.failed)[key] = reason
        return None
    scan.fetched += 1
    return package


def _status(verification: Verification) -> SignatureStatus:
    from ebpm.trust.verification import VERIFIED

    if verification.status == VERIFIED:
        state = SIGNED
    elif verification.signature:
        state = UNTRUSTED
    else:
        state = UNSIGNED
    return SignatureStatus(
        state=state, signers=verification.signers, rule=verification.rule,
        reasons=verification.rejected, manifest=verification.signature,
        policy=verification.policy,
    )


def _version_of(package: PulledPackage, repository: str, manifest_size: int) -> IndexedVersion:
    manifest = package.manifest
    size = manifest_size + manifest.config.size + sum(layer.size for layer in manifest.layers)
    readme = (package.readme or b"")[:MAX_README].decode("utf-8", "replace")
    assert package.verification is not None
    return IndexedVersion(
        repository=repository, digest=package.digest, config=package.config, size=size,
        created=manifest.annotations.get("org.opencontainers.image.created", ""),
        indexed=_now(), readme=readme, signature=_status(package.verification),
    )


def update(
    sources: Sequence[str] = (),
    *,
    repositories: Iterable[str] | None = None,
    access: RegistryAccess | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[HubIndex, RefreshResult]:
    """`ebpm hub refresh [SOURCE...]`: refresh the index in the store from the given sources
    (remembered for next time), else from the remembered ones, else from $EBPM_REGISTRY; save
    it and return it with what changed. One refresh at a time (`hub_lock`): a second one waits
    (or with `wait=False` fails), then starts from the first one's index."""
    from ebpm import config
    from ebpm.access import RegistryAccess
    from ebpm.errors import OfflineError

    parsed = [parse_source(s) for s in sources]
    access = access or RegistryAccess.from_env()
    if access.offline:
        raise OfflineError("hub refresh: offline, the registries cannot be asked",
                           hint="search and build work offline from the index as it is")
    with hub_lock("hub refresh", wait=wait, on_wait=on_wait):
        index = HubIndex.load()
        remembered = set(index.sources)
        for source in parsed:
            if str(source) not in index.sources:
                index.sources.append(str(source))
        if not parsed:
            parsed = [parse_source(s) for s in index.sources or [config.default_registry()]]
            if not index.sources:
                index.sources.append(str(parsed[0]))
        new = [str(p) for p in parsed if str(p) not in remembered]
        result = refresh(index, parsed, repositories=repositories, access=access,
                         reporter=reporter)
        typos = [parse_source(s) for s in result.empty if s in new]
        if typos:  # nothing saved: a mistyped source is not remembered for every refresh
            typo = typos[0]
            raise NotFoundError(
                f"hub refresh {typo}: " + (
                    "no such repository" if typo.repository
                    else f"no repository of {typo.registry}'s catalog matches"),
                hint=(f"check the name (`ebpm tags {typo}` lists its versions)"
                      if typo.repository else "check the pattern ('*' is one path level, "
                      "'**' any)") + "; nothing was indexed or remembered")
        down = {u.split(": ", 1)[0] for u in result.unreachable}
        index.sources = [s for s in index.sources if s not in down or s not in new]
        if result.refreshed:  # else no registry answered: nothing changed
            index.save()
    return index, result


def forget(sources: Sequence[str], *, wait: bool = True,
           on_wait: Callable[[str], None] | None = None) -> tuple[HubIndex, RefreshResult]:
    """`ebpm hub forget SOURCE...`: stop indexing these sources; the repositories no other
    source selects leave the index, and their blobs the hub's store. Offline."""
    with hub_lock("hub forget", wait=wait, on_wait=on_wait):
        index = HubIndex.load()
        gone = [parse_source(s) for s in sources]
        for source in gone:
            if str(source) not in index.sources:
                raise NotFoundError(
                    f"hub forget {source}: not a source of the index",
                    hint="its sources: " + (", ".join(index.sources) or "none yet"))
        names = {str(s) for s in gone}
        index.sources = [s for s in index.sources if s not in names]
        kept = [parse_source(s) for s in index.sources]
        result = RefreshResult()
        for name in sorted(index.repositories):
            if not _selected(name, kept):
                _forget(index, name, result)
        for key in list(index.skipped):  # what was skipped there is looked at again if asked
            if not _selected(key.rpartition("@")[0], kept):
                del index.skipped[key]
        index.drop_unreferenced()
        if result.removed:
            _prune_store(hub_store(), index)
        index.save()
    return index, result
