"""The hub's index: every indexed package version of the configured registries, kept in the store.

    $EBPM_HOME/ebpm/hub/index.json    sources, repositories (tag -> digest), versions by digest
    $EBPM_HOME/ebpm/hub/search.json   the latest version of each repository, as `ebpm search`
                                      reads it (small, no parsing of configs or signatures)
    $EBPM_HOME/ebpm/hub/store/        an OCI layout the crawler pulls into (signatures checked
                                      there, offline, against the trust policy)
    $EBPM_HOME/ebpm/hub/lock          held while a refresh or build reads, changes and writes
                                      the index and the site (holds the holder's pid and what)

A version is keyed by `registry/repository@digest`: content never changes under a digest, so a
version once indexed is never fetched again. The file is rewritten atomically as a whole.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import StoreError

if TYPE_CHECKING:
    from ebpm.package import PackageConfig
    from ebpm.trust.verification import Signer

__all__ = [
    "INDEX_VERSION",
    "SignatureStatus",
    "IndexedVersion",
    "IndexedRepository",
    "HubIndex",
    "hub_dir",
    "hub_lock",
    "version_key",
    "short_name",
    "run_tag",
]

INDEX_VERSION = 1
INDEX_FILE = "index.json"
LOCK_FILE = "lock"
SEARCH_FILE = "search.json"
MAX_SEARCH_README = 16 * 1024  # README characters `ebpm search` looks at

SIGNED = "verified"  # a signature made by a key the trust policy trusts for the repository
UNTRUSTED = "untrusted"  # signatures exist, none by a trusted key
UNSIGNED = "unsigned"


def hub_dir(store_root: str | Path | None = None) -> Path:
    """The hub's folder in the store: $EBPM_HOME/ebpm/hub."""
    if store_root is None:
        from ebpm import config

        store_root = config.store_home()
    return Path(store_root) / "ebpm" / "hub"


@contextlib.contextmanager
def hub_lock(what: str, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
             directory: Path | None = None, reading: bool = False) -> Iterator[None]:
    """One writer of the index (and the sites built from it) at a time, across processes: a
    second `hub refresh` waits for the first, then starts from its index (so nothing either
    found is lost). `what` names the holder ("hub refresh"); `on_wait` hears who holds the lock
    ("hub refresh (pid 123)") before waiting; `wait=False` raises instead. `reading`: the
    caller only reads the index (`hub build`), so an index it may not write (a read-only
    store) is read without the lock."""
    import errno
    import fcntl

    directory = directory or hub_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if reading and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            yield
            return
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "ebpm hub"
            if not wait:
                raise StoreError(f"{what}: another {holder} is running",
                                 hint="run again without --no-wait to wait for it (what both "
                                      "find is kept)") from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C interrupts the wait
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def version_key(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


def short_name(repository: str) -> str:
    """The last path component of registry/repository: what people call the tool."""
    return repository.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SignatureStatus:
    """What the trust policy said about a version when it was indexed."""

    state: str = UNSIGNED  # SIGNED, UNTRUSTED or UNSIGNED
    signers: tuple[Signer, ...] = ()  # the trusted keys that signed
    rule: str = ""  # the deciding policy rule: scope (file:line)
    reasons: tuple[str, ...] = ()  # why signatures did not count
    manifest: str = ""  # digest of the signature manifest ("" when none)
    policy: str = ""  # fingerprint of the policy it was checked under

    @property
    def signed(self) -> bool:
        return self.state == SIGNED

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "signers": [s.__dict__ for s in self.signers],
                "rule": self.rule,
                "reasons": list(self.reasons), "manifest": self.manifest, "policy": self.policy}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignatureStatus:
        from ebpm.trust.verification import Signer

        return cls(state=str(data.get("state", UNSIGNED)),
                   signers=tuple(Signer(**s) for s in data.get("signers", ())),
                   rule=str(data.get("rule", "")),
                   reasons=tuple(data.get("reasons", ())),
                   manifest=str(data.get("manifest", "")), policy=str(data.get("policy", "")))


@dataclass(frozen=True)
class IndexedVersion:
    """One package version: its config (the published metadata), README and signature status."""

    repository: str  # registry/repository
    digest: str  # the package manifest's digest
    config: PackageConfig
    size: int  # manifest, config and layers, in bytes
    created: str  # org.opencontainers.image.created ("" when the package has none)
    indexed: str  # when this digest was first indexed (UTC, ISO 8601)
    readme: str = ""
    signature: SignatureStatus = field(default_factory=SignatureStatus)

    @property
    def key(self) -> str:
        return version_key(self.repository, self.digest)

    @property
    def registry(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def date(self) -> str:
        """The package's creation date when it carries one, else when it was first seen."""
        return self.created or self.indexed

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "digest": self.digest,
                "config": self.config.to_dict(), "size": self.size, "created": self.created,
                "indexed": self.indexed, "readme": self.readme,
                "signature": self.signature.to_dict()}

    @property
    def hooks(self) -> list[str]:
        """`type:attach` of each program (`tracepoint:sched/sched_process_exec`), or its type."""
        return sorted({f"{p.type}:{p.attach}" if p.attach else p.type
                       for p in self.config.programs})

    @property
    def types(self) -> list[str]:
        return sorted({p.type for p in self.config.programs if p.type})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexedVersion:
        from ebpm.package import PackageConfig

        return cls(repository=str(data["repository"]), digest=str(data["digest"]),
                   config=PackageConfig.from_dict(data["config"]), size=int(data["size"]),
                   created=str(data.get("created", "")), indexed=str(data.get("indexed", "")),
                   readme=str(data.get("readme", "")),
                   signature=SignatureStatus.from_dict(data.get("signature") or {}))


@dataclass(frozen=True)
class IndexedRepository:
    """A repository as last listed: its package tags and the signature tags beside them."""

    name: str  # registry/repository
    tags: dict[str, str]  # tag -> manifest digest (ebpm packages only)
    # sha256-<hex>.sig -> the legacy signature manifest's digest; sha256-<hex> -> the digests
    # of the signature referrers, comma-separated (however the registry lists them)
    signatures: dict[str, str] = field(default_factory=dict)
    refreshed: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": dict(sorted(self.tags.items())),
                "signatures": dict(sorted(self.signatures.items())), "refreshed": self.refreshed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexedRepository:
        return cls(name=str(data["name"]), tags=dict(data.get("tags", {})),
                   signatures=dict(data.get("signatures", {})),
                   refreshed=str(data.get("refreshed", "")))


@dataclass
class HubIndex:
    """The whole index (mutable while a refresh edits it; saved atomically)."""

    sources: list[str] = field(default_factory=list)
    repositories: dict[str, IndexedRepository] = field(default_factory=dict)
    versions: dict[str, IndexedVersion] = field(default_factory=dict)  # by version_key
    skipped: dict[str, str] = field(default_factory=dict)  # version_key -> why not a package
    path: Path | None = None

    # -- persistence --------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path | None = None) -> HubIndex:
        """The index in the store; an empty one when none was built yet."""
        directory = directory or hub_dir()
        path = directory / INDEX_FILE
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path=path)
        except ValueError as err:  # (an empty file too)
            raise _damaged(path, f"not valid JSON: {err}") from err
        if not isinstance(doc, dict) or doc.get("v") != INDEX_VERSION:
            return cls(path=path)  # another format: rebuild from the registries
        try:
            return cls(
                sources=[str(s) for s in doc.get("sources", [])],
                repositories={k: IndexedRepository.from_dict(v)
                              for k, v in doc.get("repositories", {}).items()},
                versions={k: IndexedVersion.from_dict(v)
                          for k, v in doc.get("versions", {}).items()},
                skipped={str(k): str(v) for k, v in doc.get("skipped", {}).items()},
                path=path,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise _damaged(path, f"damaged ({err})") from err

    def save(self) -> None:
        from ebpm.files import atomic_write

        path = self.path or hub_dir() / INDEX_FILE
        doc = {
            "v": INDEX_VERSION,
            "sources": self.sources,
            "repositories": {k: self.repositories[k].to_dict() for k in sorted(self.repositories)},
            "versions": {k: self.versions[k].to_dict() for k in sorted(self.versions)},
            "skipped": dict(sorted(self.skipped.items())),
        }
        # search.json first: an interrupted save leaves the old index.json, which the next
        # refresh starts from (so both files are written again), never a new index without
        # its search file
        atomic_write(path.with_name(SEARCH_FILE),
                     json.dumps(self.search_documents(), separators=(",", ":")).encode(),
                     to_invoker=True)
        atomic_write(path, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
                     to_invoker=True)
        self.path = path

    def search_documents(self) -> list[dict[str, Any]]:
        """What `ebpm search` ranks: the latest version of every repository, flattened."""
        docs = []
        for v in self.packages():
            c = v.config
            docs.append({
                "repository": v.repository, "version": c.version, "digest": v.digest,
                "tag": run_tag(self.tags_of(v), c.version), "description": c.description,
                "license": c.license, "authors": list(c.authors), "signed": v.signature.signed,
                "types": v.types, "hooks": v.hooks, "readme": v.readme[:MAX_SEARCH_README],
            })
        return docs

    # -- queries --------------------------------------------------------------------------------

    def versions_of(self, repository: str) -> list[IndexedVersion]:
        """The repository's indexed versions, newest version first."""
        repo = self.repositories.get(repository)
        if repo is None:
            return []
        seen: dict[str, IndexedVersion] = {}
        for digest in repo.tags.values():
            version = self.versions.get(version_key(repository, digest))
            if version is not None:
                seen[digest] = version
        return sorted(seen.values(), key=_version_order, reverse=True)

    def tags_of(self, version: IndexedVersion) -> list[str]:
        repo = self.repositories.get(version.repository)
        if repo is None:
            return []
        return sorted(t for t, d in repo.tags.items() if d == version.digest)

    def latest(self, repository: str) -> IndexedVersion | None:
        """The highest release version (a pre-release only when there is nothing else)."""
        versions = self.versions_of(repository)
        releases = [v for v in versions if "-" not in v.config.version]
        chosen = releases or versions
        return chosen[0] if chosen else None

    def packages(self) -> Iterator[IndexedVersion]:
        """The latest version of every repository that holds a package, by repository name."""
        for name in sorted(self.repositories):
            latest = self.latest(name)
            if latest is not None:
                yield latest

    def dependents(self) -> dict[str, list[str]]:
        """Reverse dependencies: repository -> the repositories whose latest version needs it."""
        from ebpm.hub.graph import dependencies_of

        out: dict[str, list[str]] = {}
        for package in self.packages():
            for dep in dependencies_of(package.config, package.registry):
                if dep.repository and dep.repository != package.repository:
                    out.setdefault(dep.repository, []).append(package.repository)
        return {k: sorted(set(v)) for k, v in out.items()}

    def drop_unreferenced(self) -> None:
        """Forget versions no tag of their repository points to any more."""
        live = {version_key(r.name, d) for r in self.repositories.values() for d in r.tags.values()}
        for key in [k for k in self.versions if k not in live]:
            del self.versions[key]

    def with_version(self, version: IndexedVersion) -> None:
        self.versions[version.key] = version

    def replace_signature(self, key: str, status: SignatureStatus) -> None:
        self.versions[key] = replace(self.versions[key], signature=status)


def _damaged(path: Path, why: str) -> StoreError:
    """An index no command can read: every one of them fails on it, refresh too."""
    return StoreError(f"hub index {path}: {why}",
                      hint=f"remove {path} and run `ebpm hub refresh [SOURCE...]` to build it "
                           "again (the sources it remembered go with it)")


def run_tag(tags: list[str], version: str) -> str:
    """The tag to name a version by: its version tag when it has one."""
    tag = version.replace("+", "_")
    return tag if tag in tags or not tags else tags[0]


def _version_order(version: IndexedVersion) -> tuple[Any, ...]:
    from ebpm.versions import is_version, parse_version

    text = version.config.version
    if is_version(text):
        return (1, parse_version(text), version.digest)
    return (0, text, version.digest)  # pragma: no cover - configs always carry semver
