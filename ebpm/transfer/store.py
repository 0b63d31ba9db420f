"""Use cases on the local store: list what it holds, remove packages, prune."""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ebpm.errors import NotFoundError

if TYPE_CHECKING:
    from ebpm.oci.layout import Store

__all__ = ["StoredPackage", "StoredItem", "list_packages", "list_store", "remove", "prune",
           "PRUNE_GRACE"]

PRUNE_GRACE = 3600.0  # seconds an unnamed blob written or found lately is kept by a prune


@dataclass(frozen=True)
class StoredPackage:
    name: str  # registry/repository:tag
    package: str
    version: str
    digest: str
    size: int  # manifest + config + layers
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_packages() -> list[StoredPackage]:
    from ebpm.oci.layout import Store
    from ebpm.oci.model import URL_FILE_TYPE
    from ebpm.oci.referrers import is_auxiliary_tag
    from ebpm.package import PackageConfig
    from ebpm.trust.discovery import store_names

    store = Store()
    entries = store.entries()
    names = {e.name for e in entries}
    out = []
    for entry in entries:
        if is_auxiliary_tag(entry.tag) or entry.descriptor.artifact_type == URL_FILE_TYPE:
            continue  # signatures, and url files (`ebpm cache ls` lists those)
        try:
            _, manifest = store.read_manifest(entry.descriptor.digest)
            config = PackageConfig.from_json(store.read_blob(manifest.config.digest))
        except Exception:  # a damaged or foreign entry: list what we can
            out.append(StoredPackage(entry.name, "?", "?", entry.descriptor.digest,
                                     entry.descriptor.size, False))
            continue
        size = entry.descriptor.size + manifest.config.size + sum(x.size for x in manifest.layers)
        signed = any(n in names for n in store_names(entry.repository, entry.descriptor.digest))
        out.append(StoredPackage(entry.name, config.name, config.version,
                                 entry.descriptor.digest, size, signed))
    return sorted(out, key=lambda p: p.name)


@dataclass(frozen=True)
class StoredItem:
    """One thing the store names (`cache prune` keeps it): a package, a git build, a url file."""

    kind: str  # package | git | url
    name: str  # the index name
    source: str  # package@version, or the file's URL
    digest: str  # manifest digest, or sha256:<hex> of a url file
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_store() -> tuple[list[StoredItem], int, int]:
    """Everything the store names, and (files, bytes) of the blobs nothing names."""
    from ebpm.oci.layout import Store
    from ebpm.oci.model import URL_ANNOTATION, URL_FILE_TYPE

    store = Store()
    items = [StoredItem("git" if p.name.startswith("git.ebpm/") else "package", p.name,
                        f"{p.package}@{p.version}", p.digest, p.size) for p in list_packages()]
    for entry in store.entries():
        if entry.descriptor.artifact_type != URL_FILE_TYPE:
            continue
        digest, size = "?", entry.descriptor.size
        with contextlib.suppress(Exception):  # a damaged entry: list what we can
            _, manifest = store.read_manifest(entry.descriptor.digest)
            digest, size = manifest.layers[0].digest, manifest.layers[0].size
        items.append(StoredItem("url", entry.name, entry.descriptor.annotations.get(
            URL_ANNOTATION, "?"), digest, size))
    loose = store.unreferenced()
    return (sorted(items, key=lambda i: (i.kind, i.name)), len(loose),
            sum(os.stat(p).st_size for p in loose))


def remove(ref: str) -> list[str]:
    """Untag REF (a repository removes all its tags) and prune blobs nothing else uses."""
    from ebpm.access import parse_reference
    from ebpm.oci.layout import Store
    from ebpm.transfer.pull import store_name
    from ebpm.trust.discovery import store_names

    reference = parse_reference(ref)
    store = Store()
    removed: list[str] = []
    gone: set[str] = set()  # the digests the removed names kept
    with store.lock():
        for entry in store.entries():
            if entry.repository != reference.name:
                continue
            exact = store_name(reference) if (reference.tag or reference.digest) else None
            if exact is None or entry.name == exact or (
                reference.digest and entry.descriptor.digest == reference.digest
            ):
                gone |= store.reach(entry.descriptor)
                store.untag(entry.name)
                for name in store_names(entry.repository, entry.descriptor.digest):
                    signature = store.resolve(name)
                    if signature is not None:
                        gone |= store.reach(signature)
                    store.untag(name)
                store.clear_verifications(entry.descriptor.digest)
                removed.append(entry.name)
        if not removed:
            raise NotFoundError(f"{reference}: not in the store", hint="see `ebpm list`")
        _prune(store, PRUNE_GRACE, gone)  # what it unnamed, and old leftovers
    return removed


def prune(*, grace: float = PRUNE_GRACE) -> tuple[int, int, int]:
    """Delete every blob no index entry reaches (packages, their signatures, git builds and url
    files are named, so they stay), except those written or found by a writer in the last
    `grace` seconds (an install or pull may be about to name them); returns (files, bytes,
    blobs kept for their age)."""
    from ebpm.oci.layout import Store

    store = Store()
    with store.lock():
        return _prune(store, grace)


def _prune(store: Store, grace: float, unnamed: set[str] | None = None) -> tuple[int, int, int]:
    """Remove the unreferenced blobs older than `grace` seconds (`Store.holds`/`has_blob` touch
    a blob a writer finds), and those of the digests `unnamed` whatever their age; returns
    (files, bytes, blobs kept for their age)."""
    import time

    now = {d.partition(":")[2] for d in unnamed or ()}
    cutoff = time.time() - grace
    old, young = [], 0
    for path in store.unreferenced():
        try:
            recent = (bool(grace) and os.path.basename(path) not in now
                      and os.stat(path).st_mtime > cutoff)
        except FileNotFoundError:
            continue
        if recent:
            young += 1
        else:
            old.append(path)
    return (*store.remove_blobs(old), young)
