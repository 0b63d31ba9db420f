"""Air gap: save packages with their signatures as an OCI-layout tar, and load one back."""

from __future__ import annotations

import contextlib
import os
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
from ebpm.oci.model import URL_FILE_TYPE
from ebpm.oci.reference import Reference
from ebpm.oci.referrers import is_auxiliary_tag
from ebpm.trust.verification import Verification, enforce, forget

if TYPE_CHECKING:
    from collections.abc import Callable

    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.oci.model import Descriptor


__all__ = ["LoadedPackage", "Pinned", "save", "load", "PINNED"]

PINNED = "dev.ebpm.pinned"  # index annotation of an unnamed entry a lockfile pins by digest


@dataclass(frozen=True)
class LoadedPackage:
    name: str  # registry/repository:tag, or a pinned entry's label
    digest: str
    verification: Verification | None  # None: a pinned entry (checked by its digest at install)


@dataclass(frozen=True)
class Pinned:
    """Something a lockfile pins by digest rather than by a registry name: a git package's
    build (a manifest in the store) or a url dependency's file (a blob, saved wrapped in a
    manifest). Saved and loaded unnamed: only the digest in a lock makes it a package, so an
    archive cannot pass anything off as the build of a commit."""

    label: str  # for people: "git URL@COMMIT", "url URL"
    digest: str
    file: bool = False  # a plain blob (url file), not a manifest
    data: bytes | None = None  # a file's bytes, when they are not in the store (git objects)
    artifact_type: str = URL_FILE_TYPE  # of the manifest wrapping a file
    annotations: tuple[tuple[str, str], ...] = ()  # of the wrapped file's descriptor


_DIR_MODE, _FILE_MODE = 0o755, 0o644


def _package_blobs(store: Store, digest: str) -> list[str]:
    _, manifest = store.read_manifest(digest)
    return [digest, manifest.config.digest, *(d.digest for d in manifest.layers)]


def _signature_blobs(read: Callable[[str], bytes], desc: Descriptor) -> list[str]:
    """A signature manifest's blobs, or a referrers index's and those of its manifests."""
    from ebpm.oci.model import INDEX_V1, Manifest
    from ebpm.oci.referrers import parse_index, signature_blobs

    digests = [desc.digest]
    children = [desc.digest]
    if desc.media_type == INDEX_V1:
        children = [d.digest for d in parse_index(read(desc.digest))]
        digests += children
    for child in children:
        manifest = Manifest.from_bytes(read(child), where=f"signature manifest {child}")
        digests += [d.digest for d in signature_blobs(manifest)[0]]  # what verification reads
    return digests


def _pinned_entry(store: Store, item: Pinned, extra: dict[str, bytes]) -> tuple[dict[str, Any],
                                                                              list[str]]:
    """The index entry and blob digests of one pinned item (a url file wrapped in a small
    manifest whose blobs go to `extra`)."""
    from ebpm.digests import sha256_digest
    from ebpm.oci.artifact import wrap_file
    from ebpm.oci.model import MANIFEST_V1, TITLE

    if not item.file:
        if not store.holds(item.digest):
            raise StoreError(f"save {item.label}: its build {item.digest} is not in the store",
                             hint="run `ebpm install` in the project first")
        raw, manifest = store.read_manifest(item.digest)
        desc: dict[str, Any] = {"mediaType": manifest.media_type or MANIFEST_V1,
                                "digest": item.digest, "size": len(raw)}
        if manifest.artifact_type:
            desc["artifactType"] = manifest.artifact_type
        return desc, _package_blobs(store, item.digest)
    if item.data is not None:
        extra[item.digest] = item.data
        size = len(item.data)
    elif not store.holds(item.digest):
        raise StoreError(f"save {item.label}: its file {item.digest} is not in the store",
                         hint="run `ebpm install` in the project first")
    else:
        size = os.stat(store.blob_path(item.digest)).st_size

    notes = dict(item.annotations) or {TITLE: item.label.removeprefix("url ")}
    body, empty = wrap_file(item.digest, size, artifact_type=item.artifact_type,
                            annotations=notes)
    wrapper = sha256_digest(body)
    extra[wrapper] = body
    extra[sha256_digest(empty)] = empty
    return ({"mediaType": MANIFEST_V1, "digest": wrapper, "size": len(body),
             "artifactType": item.artifact_type}, [wrapper, item.digest])


def save(refs: list[str], output: Path, *, allow_unsigned: bool = False,
         pinned: tuple[Pinned, ...] = (), access: RegistryAccess | None = None) -> list[str]:
    """Write the packages `refs` (from the store) and their signatures as one deterministic
    OCI-layout tarball; returns the names saved. Each is checked against the policy first.
    `pinned`: items saved unnamed, for a lockfile that names them by digest. A package whose
    pull stopped at its legacy signature gets every signature looked up first, when `access`
    (default: from the environment) is online: the machine that loads it may trust another."""
    import io
    import json
    import tarfile

    from ebpm.access import RegistryAccess, parse_reference
    from ebpm.files import atomic_write
    from ebpm.oci.layout import REF_NAME, Store
    from ebpm.oci.model import INDEX_V1
    from ebpm.transfer.pull import find_cached, resolve_tag, store_name
    from ebpm.trust.discovery import complete, store_names

    if not refs and not pinned:
        raise UsageError("save: name at least one package")
    store = Store()
    entries: dict[str, Any] = {}
    digests: set[str] = set()
    extra: dict[str, bytes] = {}
    for item in pinned:
        desc_dict, blobs = _pinned_entry(store, item, extra)
        entries[f"~{item.label}"] = {**desc_dict, "annotations": {PINNED: item.label}}
        digests.update(blobs)
    for ref in refs:
        reference = parse_reference(ref)
        with contextlib.suppress(NotFoundError):
            reference = resolve_tag(reference, store, True, None)
        desc = find_cached(store, reference)
        if desc is None:
            raise StoreError(f"save {reference}: not in the store",
                             hint=f"pull it first: `ebpm pull {ref}`")
        reference = reference.with_digest(desc.digest)
        looked = complete(store, reference, desc.digest, access or RegistryAccess.from_env())
        enforce(store, reference, desc.digest, allow_unsigned=allow_unsigned,
                partial=False if looked else None)
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
        *((f"blobs/sha256/{d.partition(':')[2]}", extra.get(d) or store.read_blob(d))
          for d in sorted(digests | set(extra))),
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
    return sorted(k for k in entries
                  if not k.startswith("~") and not is_auxiliary_tag(k.rpartition(":")[2]))


def _read_archive(
    path: Path, staging: Path
) -> tuple[dict[str, Path], dict[str, bytes], list[dict[str, Any]]]:
    """Stream the archive's blobs into `staging` (hashing each as it is written), within the
    caps on its decompressed size and member count (EBPM_MAX_ARCHIVE_SIZE/_MEMBERS); return
    the blob files, the bytes of the small ones (manifests, configs) and the index entries."""
    import json
    import re
    import tarfile

    from ebpm.digests import sha256
    from ebpm.errors import TooLargeError
    from ebpm.limits import human_size, limits

    caps = limits()
    blob_re = re.compile(r"blobs/sha256/([a-f0-9]{64})")
    files: dict[str, Path] = {}
    small: dict[str, bytes] = {}
    index: bytes | None = None
    total = members = 0
    stops: list[str] = []  # why each header read found no member (tarfile's class names)

    class Header(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, archive: tarfile.TarFile) -> Header:
            try:
                return super().fromtarfile(archive)
            except tarfile.HeaderError as err:
                stops.append(type(err).__name__)
                raise

    def damaged(cause: str) -> ManifestError:
        return ManifestError(f"load {path}: damaged archive: {cause}",
                             hint="nothing was loaded; copy the archive again (`ebpm save` "
                                  "writes one: an OCI image layout as a tar)")

    try:
        tar = tarfile.open(path, mode="r:*", tarinfo=Header)
    except tarfile.TarError as err:
        raise ManifestError(f"load {path}: not a tar archive (plain, gzip, bzip2 or xz)",
                            hint="give an archive `ebpm save` wrote (an OCI image layout as "
                                 "a tar)") from err
    except OSError as err:
        raise UsageError(f"load {path}: cannot read it: {err.strerror or err}") from err

    def too_large(what: str) -> TooLargeError:
        return TooLargeError(
            f"load {path}: {what}",
            hint="nothing was loaded; raise EBPM_MAX_ARCHIVE_SIZE / EBPM_MAX_ARCHIVE_MEMBERS "
            "if you trust this archive",
        )

    with tar:
        try:
            for member in tar:
                members += 1
                if members > caps.archive_members:
                    raise too_large(f"more than {caps.archive_members} members")
                name = _member_name(member.name)
                if member.isdir() and name in _LAYOUT_DIRS:
                    continue
                match = blob_re.fullmatch(name)
                if not member.isfile() or (match is None and name not in _LAYOUT_FILES
                                           and name not in _DOCKER_FILES):
                    raise ManifestError(
                        f"load {path}: unexpected member {member.name!r}",
                        hint="ebpm loads an OCI image layout as a tar: oci-layout, index.json "
                             "and blobs/sha256/ as regular files, no links or other paths")
                total += member.size
                if total > caps.archive_size:
                    raise too_large(
                        f"its contents exceed the {human_size(caps.archive_size)} cap "
                        "(EBPM_MAX_ARCHIVE_SIZE)")
                if name in _DOCKER_FILES:
                    continue  # `docker load`'s view of the same layout (regctl, crane write it)
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                if match is None:
                    if member.size > caps.manifest_size:
                        raise too_large(f"{name} is larger than a manifest may be")
                    data = handle.read(caps.manifest_size + 1)
                    if name == "index.json":
                        index = data
                    continue
                digest = f"sha256:{match.group(1)}"
                target = staging / match.group(1)
                hasher = sha256()
                with open(target, "wb") as out:
                    while chunk := handle.read(1 << 16):
                        hasher.update(chunk)
                        out.write(chunk)
                got = "sha256:" + hasher.hexdigest()
                if got != digest:
                    raise DigestMismatchError(
                        f"load {path}: blob {digest}: got digest {got}",
                        hint="the archive was damaged or tampered with; nothing was loaded",
                    )
                files[digest] = target
                if member.size <= caps.manifest_size:
                    small[digest] = target.read_bytes()
        except OSError as err:
            if err.errno is not None:
                raise  # the machine's (a full disk), not the archive's
            raise damaged(str(err) or "not valid compressed data") from err
        except (EOFError, tarfile.TarError, zlib_error()) as err:
            raise damaged(str(err) or "unexpected end of data") from err
        if stops and stops[-1] != "EOFHeaderError":  # not the end-of-archive marker
            raise damaged("it ends inside a member or without the end-of-archive marker "
                          "(truncated?)")
    if index is None:
        raise ManifestError(f"load {path}: no index.json (not an OCI layout archive)")
    try:
        doc = json.loads(index)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise ManifestError(f"load {path}: index.json is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ManifestError(f"load {path}: index.json must be a JSON object")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError(f"load {path}: index.json must hold a \"manifests\" list")
    return files, small, manifests


_LAYOUT_DIRS = ("", "blobs", "blobs/sha256")
_LAYOUT_FILES = ("index.json", "oci-layout")
_DOCKER_FILES = ("manifest.json", "repositories")  # beside the layout in docker-compatible tars


def _member_name(name: str) -> str:
    """A member's path as the layout names it: `./x`, `x/` and `.` (what `tar -C DIR .`
    writes) are `x`, `x` and ``; anything else is left for the caller to refuse."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def zlib_error() -> type[BaseException]:
    import zlib

    return zlib.error


CONTAINERD_NAME = "io.containerd.image.name"  # the full name, where ref.name is the tag alone


def _entry_name(annotations: dict[str, str]) -> tuple[str, Reference | None]:
    """An index entry's full name and its reference: its `ref.name` annotation, or, where
    that is a bare tag (regctl's and containerd's exports), `io.containerd.image.name`."""
    from ebpm.errors import InvalidReferenceError
    from ebpm.oci.layout import REF_NAME
    from ebpm.oci.reference import parse

    first = annotations.get(REF_NAME, "")
    for name in (first, annotations.get(CONTAINERD_NAME, "")):
        if name:
            with contextlib.suppress(InvalidReferenceError):
                reference = parse(name)
                if reference.tag:
                    return name, reference
    return first, None


def _reader(blobs: dict[str, bytes], path: Path) -> Callable[[str], bytes]:
    def read(digest: str) -> bytes:
        if digest not in blobs:
            raise ManifestError(f"load {path}: blob {digest} is missing from the archive")
        return blobs[digest]
    return read


def load(path: Path, *, allow_unsigned: bool = False) -> list[LoadedPackage]:
    """Load an archive from `save` into the store; every package is verified (content and
    signatures) before any is named in the store: one refused package loads nothing.
    Blobs stream through a staging directory in the store: memory stays flat."""
    from ebpm.oci.layout import Store

    store = Store()
    with store.staging() as staging:
        return _load(path, store, Path(staging), allow_unsigned=allow_unsigned)


def _load(path: Path, store: Store, staging: Path, *, allow_unsigned: bool
          ) -> list[LoadedPackage]:
    from ebpm.oci.artifact import check_package_manifest
    from ebpm.oci.layout import REF_NAME
    from ebpm.oci.model import Descriptor, Manifest

    files, blobs, raw_entries = _read_archive(Path(path), staging)
    packages: list[tuple[str, Reference, Descriptor]] = []
    signatures: list[tuple[str, Descriptor]] = []
    pinned: list[LoadedPackage] = []
    needed: set[str] = set()
    for raw in raw_entries:
        desc = Descriptor.from_dict(raw, where=f"load {path}: index entry")
        name = desc.annotations.get(REF_NAME, "")
        label = desc.annotations.get(PINNED, "")
        if label and not name:
            # loaded unnamed: only a lockfile's digest makes it a package (at install)
            if desc.digest not in blobs:
                raise ManifestError(f"load {path}: {label}: manifest {desc.digest} is missing")
            manifest = Manifest.from_bytes(blobs[desc.digest], where=f"load {path}: {label}")
            needed.update(d.digest for d in (manifest.config, *manifest.layers))
            pinned.append(LoadedPackage(label, desc.digest, None))
            continue
        name, reference = _entry_name(desc.annotations)
        if reference is None or not reference.tag:
            raise ManifestError(
                f"load {path}: index entry {desc.digest} has no full name",
                hint=f"ebpm names a package by REGISTRY/REPOSITORY:TAG in the {REF_NAME} "
                     f"or {CONTAINERD_NAME} annotation (`ebpm save` writes it)")
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
    missing = sorted(d for d in needed if d not in files)
    if missing:
        raise ManifestError(f"load {path}: blob {missing[0]} is missing from the archive")

    loaded: list[LoadedPackage] = []
    with store.lock():
        written = [d for d in sorted(files) if not store.has_blob(d)]
        for digest in written:
            store.adopt_blob(files[digest], digest)
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
                    os.unlink(store.blob_path(digest))
            raise
        for name, _, desc in packages:
            store.tag(name, desc)
    return loaded + pinned
