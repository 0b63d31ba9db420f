"""Air gap: save packages with their signatures as an OCI-layout tar, and load one back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import (
    DigestMismatchError,
    EbpmError,
    ManifestError,
    NotFoundError,
    StoreError,
    UsageError,
)
from ebpm.oci.reference import Reference
from ebpm.oci.referrers import is_auxiliary_tag
from ebpm.trust.verification import Verification, enforce, forget

if TYPE_CHECKING:
    from collections.abc import Callable

    from ebpm.oci.layout import Store
    from ebpm.oci.model import Descriptor


__all__ = ["LoadedPackage", "save", "load"]


@dataclass(frozen=True)
class LoadedPackage:
    name: str  # registry/repository:tag
    digest: str
    verification: Verification




_DIR_MODE, _FILE_MODE = 0o755, 0o644


def _package_blobs(store: Store, digest: str) -> list[str]:
    _, manifest = store.read_manifest(digest)
    return [digest, manifest.config.digest, *(d.digest for d in manifest.layers)]


def _signature_blobs(read: Callable[[str], bytes], desc: Descriptor) -> list[str]:
    """A signature manifest's blobs, or a referrers index's and those of its manifests."""
    from ebpm.oci.model import INDEX_V1, Manifest
    from ebpm.oci.referrers import parse_index

    digests = [desc.digest]
    children = [desc.digest]
    if desc.media_type == INDEX_V1:
        children = [d.digest for d in parse_index(read(desc.digest))]
        digests += children
    for child in children:
        manifest = Manifest.from_bytes(read(child), where=f"signature manifest {child}")
        digests += [manifest.config.digest, *(d.digest for d in manifest.layers)]
    return digests


def save(refs: list[str], output: Path, *, allow_unsigned: bool = False) -> list[str]:
    """Write the packages `refs` (from the store) and their signatures as one deterministic
    OCI-layout tarball; returns the names saved. Each is checked against the policy first."""
    import io
    import json
    import tarfile

    from ebpm.access import parse_reference
    from ebpm.files import atomic_write
    from ebpm.oci.layout import REF_NAME, Store
    from ebpm.oci.model import INDEX_V1
    from ebpm.transfer.pull import find_cached, resolve_tag, store_name
    from ebpm.trust.discovery import store_names

    if not refs:
        raise UsageError("save: name at least one package")
    store = Store()
    entries: dict[str, Any] = {}
    digests: set[str] = set()
    for ref in refs:
        reference = parse_reference(ref)
        with contextlib.suppress(NotFoundError):
            reference = resolve_tag(reference, store, True, None)
        desc = find_cached(store, reference)
        if desc is None:
            raise StoreError(f"save {reference}: not in the store",
                             hint=f"pull it first: `ebpm pull {ref}`")
        reference = reference.with_digest(desc.digest)
        enforce(store, reference, desc.digest, allow_unsigned=allow_unsigned)
        name = store_name(reference)
        entries[name] = {**desc.to_dict(), "annotations": {REF_NAME: name}}
        digests.update(_package_blobs(store, desc.digest))
        for sig_name in store_names(reference.name, desc.digest):
            sig_desc = store.resolve(sig_name)
            if sig_desc is not None:
                entries[sig_name] = {**sig_desc.to_dict(), "annotations": {REF_NAME: sig_name}}
                digests.update(_signature_blobs(store.read_blob, sig_desc))
    index = {"schemaVersion": 2, "mediaType": INDEX_V1,
             "manifests": [entries[k] for k in sorted(entries)]}
    files: list[tuple[str, bytes | None]] = [
        ("blobs/", None), ("blobs/sha256/", None),
        *((f"blobs/sha256/{d.partition(':')[2]}", store.read_blob(d)) for d in sorted(digests)),
        ("index.json", json.dumps(index, indent=2, sort_keys=True).encode()),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), _FILE_MODE
                tar.addfile(info, io.BytesIO(data))
    atomic_write(Path(output), buf.getvalue(), to_invoker=True)
    return sorted(k for k in entries if not is_auxiliary_tag(k.rpartition(":")[2]))


_MAX_ARCHIVE_MEMBER = 512 * 1024 * 1024


def _read_archive(path: Path) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    import json
    import re
    import tarfile

    from ebpm.oci.model import sha256_digest

    blob_re = re.compile(r"(?:\./)?blobs/sha256/([a-f0-9]{64})")
    blobs: dict[str, bytes] = {}
    index: bytes | None = None
    try:
        tar = tarfile.open(path, mode="r:*")
    except (OSError, tarfile.TarError) as err:
        raise UsageError(f"load {path}: not a readable tar archive: {err}") from err
    with tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            if member.isdir() and name in ("", "blobs", "blobs/sha256"):
                continue
            if not member.isfile() or member.size > _MAX_ARCHIVE_MEMBER:
                raise ManifestError(f"load {path}: unexpected member {member.name!r}",
                                    hint="an archive from `ebpm save` holds only an OCI layout")
            match = blob_re.fullmatch(name)
            if name not in ("index.json", "oci-layout") and match is None:
                raise ManifestError(f"load {path}: unexpected member {member.name!r}")
            handle = tar.extractfile(member)
            data = handle.read() if handle is not None else b""
            if name == "index.json":
                index = data
            elif match is not None:
                digest = f"sha256:{match.group(1)}"
                if sha256_digest(data) != digest:
                    raise DigestMismatchError(
                        f"load {path}: blob {digest}: got digest {sha256_digest(data)}",
                        hint="the archive was damaged or tampered with; nothing was loaded",
                    )
                blobs[digest] = data
    if index is None:
        raise ManifestError(f"load {path}: no index.json (not an OCI layout archive)")
    try:
        doc = json.loads(index)
        manifests = doc["manifests"]
        if not isinstance(manifests, list):
            raise TypeError("manifests is not a list")
    except (ValueError, KeyError, TypeError) as err:
        raise ManifestError(f"load {path}: index.json is invalid: {err}") from err
    return blobs, manifests


def _reader(blobs: dict[str, bytes], path: Path) -> Callable[[str], bytes]:
    def read(digest: str) -> bytes:
        if digest not in blobs:
            raise ManifestError(f"load {path}: blob {digest} is missing from the archive")
        return blobs[digest]
    return read


def load(path: Path, *, allow_unsigned: bool = False) -> list[LoadedPackage]:
    """Load an archive from `save` into the store; every package is verified (content and
    signatures) before any is named in the store: one refused package loads nothing."""
    from ebpm.oci.artifact import check_package_manifest
    from ebpm.oci.layout import REF_NAME, Store
    from ebpm.oci.model import Descriptor, Manifest
    from ebpm.oci.reference import parse

    blobs, raw_entries = _read_archive(Path(path))
    packages: list[tuple[str, Reference, Descriptor]] = []
    signatures: list[tuple[str, Descriptor]] = []
    needed: set[str] = set()
    for raw in raw_entries:
        desc = Descriptor.from_dict(raw, where=f"load {path}: index entry")
        name = desc.annotations.get(REF_NAME, "")
        reference = parse(name) if name else None
        if reference is None or not reference.tag:
            raise ManifestError(f"load {path}: index entry {desc.digest} has no full name")
        if desc.digest not in blobs:
            raise ManifestError(f"load {path}: {name}: manifest {desc.digest} is missing")
        clean = Descriptor(desc.media_type, desc.digest, desc.size,
                           artifact_type=desc.artifact_type)
        if is_auxiliary_tag(reference.tag):
            try:
                needed.update(_signature_blobs(_reader(blobs, path), clean))
            except (ManifestError, KeyError) as err:
                raise ManifestError(f"load {path}: {name}: {err}") from err
            signatures.append((name, clean))
        else:
            manifest = Manifest.from_bytes(blobs[desc.digest], where=f"load {path}: {name}")
            needed.update(d.digest for d in (manifest.config, *manifest.layers))
            check_package_manifest(manifest, where=name)
            packages.append((name, reference.with_digest(desc.digest), clean))
    missing = sorted(d for d in needed if d not in blobs)
    if missing:
        raise ManifestError(f"load {path}: blob {missing[0]} is missing from the archive")

    store = Store()
    loaded: list[LoadedPackage] = []
    with store.lock():
        written = [d for d in sorted(blobs) if not store.has_blob(d)]
        for digest in written:
            store.write_blob(blobs[digest], digest)
        previous = {name: store.resolve(name) for name, _ in signatures}
        for name, desc in signatures:
            store.tag(name, desc)
        try:
            for name, reference, desc in packages:
                verification = enforce(store, reference, desc.digest,
                                       allow_unsigned=allow_unsigned)
                loaded.append(LoadedPackage(name, desc.digest, verification))
        except BaseException:
            for name, _ in signatures:
                old = previous[name]
                if old is None:
                    store.untag(name)
                else:
                    store.tag(name, old)
            for _, reference, desc in packages:
                with contextlib.suppress(EbpmError):
                    forget(store, desc.digest, reference.name)
            for digest in written:
                with contextlib.suppress(FileNotFoundError):
                    store.blob_path(digest).unlink()
            raise
        for name, _, desc in packages:
            store.tag(name, desc)
    return loaded
