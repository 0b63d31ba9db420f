"""Signing use cases: sign a pushed package, verify and enforce the trust policy, save and load.

`enforce()` is what pull, install and run call before a package is usable: it works from the
local store alone (offline), checks every signature against the trust policy, and records the
outcome with the policy's fingerprint, so a later run needs neither the network nor
`cryptography` until the policy or the signatures change.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import (
    DigestMismatchError,
    EbpmError,
    ManifestError,
    NotFoundError,
    OfflineError,
    RegistryError,
    SignatureError,
    StoreError,
    UsageError,
)
from ebpm.oci.reference import Reference
from ebpm.oci.signature import signature_tag

if TYPE_CHECKING:
    from ebpm.oci.layout import Store
    from ebpm.oci.remote import Registry
    from ebpm.trust import Rule

__all__ = [
    "Signer",
    "Verification",
    "SignResult",
    "LoadedPackage",
    "sign",
    "sign_reference",
    "enforce",
    "verify",
    "save",
    "load",
    "VERIFIED",
    "UNSIGNED_ALLOWED",
    "NOT_REQUIRED",
]

VERIFIED = "verified"
UNSIGNED_ALLOWED = "unsigned-allowed"  # --allow-unsigned: accepted without a trusted signature
NOT_REQUIRED = "not-required"  # the policy's rule says `require = false`
_RECORD_VERSION = 1
_SIGN_ATTEMPTS = 8
_SETTLE = 0.05  # seconds for a concurrent signer's write to land before we read back


@dataclass(frozen=True)
class Signer:
    """A signature that the policy accepted: which trusted key made it, over which payload."""

    key_id: str
    key_source: str  # the trusted public key's file (or "inline")
    docker_reference: str
    payload_digest: str


@dataclass(frozen=True)
class Verification:
    """The outcome of checking one package against the trust policy."""

    repository: str  # registry/repository
    digest: str  # the package manifest digest
    status: str  # VERIFIED, UNSIGNED_ALLOWED or NOT_REQUIRED
    signers: tuple[Signer, ...]
    rejected: tuple[str, ...]  # why the other signatures did not count
    policy: str  # fingerprint of the effective policy
    rule: str  # the deciding rule: scope (file:line)
    signature: str  # digest of the signature manifest in the store ("" if none)
    cached: bool  # taken from the store's verification record

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "status": self.status,
            "signers": [s.__dict__ for s in self.signers],
            "rejected": list(self.rejected),
            "policy": self.policy,
            "rule": self.rule,
            "signature": self.signature,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class SignResult:
    """A signature added (or found already there) in the registry."""

    reference: Reference  # the signed package, with its digest
    digest: str  # the signature manifest's digest
    key_id: str
    added: bool  # False when this key had already signed this digest


@dataclass(frozen=True)
class LoadedPackage:
    name: str  # registry/repository:tag
    digest: str
    verification: Verification


# -- signing ----------------------------------------------------------------------------------


def sign(
    reference: Reference, manifest_digest: str, key_path: str, *, registry: Registry | None = None,
    password: str | None = None, store: Store | None = None,
) -> SignResult:
    """Sign `manifest_digest` of `reference`'s repository with the private key `key_path` (a key
    name or a file), adding a layer to the signature manifest at `sha256-<hex>.sig` and keeping
    every other signer's. The local store gets the new signature manifest too when it holds the
    package, so `ebpm verify` sees it offline."""
    from ebpm.keys import key_id, public_der
    from ebpm.oci import signature as sig
    from ebpm.oci.model import MANIFEST_V1, Manifest, sha256_digest

    if registry is None:
        from ebpm.connect import registry_for

        registry = registry_for(reference.registry)
    from cryptography.hazmat.primitives import serialization

    from ebpm.keys import load_private

    key = load_private(key_path, password=password)
    public = key.public_key()
    kid = key_id(public_der(public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)))
    payload = sig.make_payload(sig.docker_reference(reference.name), manifest_digest)
    payload_digest = sha256_digest(payload)
    tag = signature_tag(manifest_digest)
    repo = reference.repository
    where = f"{reference.name}:{tag}"

    def current() -> tuple[bytes, str, Manifest, bool] | None:
        """The signature manifest in the registry, and whether this key has signed in it."""
        try:
            data, _, digest = registry.get_manifest(repo, tag)
        except NotFoundError:
            return None
        parsed = sig.parse_manifest(data, where=where)
        mine = any(
            layer.descriptor.digest == payload_digest
            and sig.verify_payload(payload, layer.signature, public)
            for layer in parsed.signatures
        )
        return data, digest, parsed.manifest, mine

    found = current()
    if found is not None and found[3]:
        _store_signature(store, reference, manifest_digest, registry, found[0])
        return SignResult(reference.with_digest(manifest_digest), found[1], kid, False)
    signature = sig.sign_payload(payload, key)
    registry.push_blob(repo, payload_digest, payload)
    # Registries have no compare-and-swap for tags. Read, add, check nobody wrote meanwhile,
    # write, let concurrent writers land, read back: a signer that wrote a stale manifest over
    # ours makes us add our layer again, on top of theirs.
    for attempt in range(_SIGN_ATTEMPTS):
        data, config, _ = sig.add_signature(found[2] if found else None, payload, signature)
        registry.push_blob(repo, sha256_digest(config), config)
        latest = current()
        if (latest[1] if latest else "") != (found[1] if found else ""):
            found = latest
            continue
        try:
            registry.put_manifest(repo, tag, data, MANIFEST_V1)
        except RegistryError as err:
            # Signers of one digest upload the same payload blob; while another's upload of it
            # commits, distribution may call it unknown: upload again and retry.
            if err.status != 400 or attempt + 1 == _SIGN_ATTEMPTS:
                raise
            registry.push_blob(repo, payload_digest, payload)
            found = current()
            continue
        time.sleep(_SETTLE * (1 + attempt) * (1 + random.random()))
        found = current()
        if found is not None and found[3]:
            _store_signature(store, reference, manifest_digest, registry, found[0],
                             extra={payload_digest: payload, sha256_digest(config): config})
            return SignResult(reference.with_digest(manifest_digest), found[1], kid, True)
    raise SignatureError(
        f"{where}: the signature did not stick: other signers keep replacing the manifest",
        hint="sign again in a moment",
    )


def _store_signature(store: Store | None, reference: Reference, manifest_digest: str,
                     registry: Registry, data: bytes,
                     extra: dict[str, bytes] | None = None) -> None:
    """Put the signature manifest into the local store if it holds the signed package."""
    from ebpm.oci.layout import Store
    from ebpm.oci.model import Descriptor, Manifest, sha256_digest

    store = store or Store()
    if not store.has_blob(manifest_digest):
        return
    manifest = Manifest.from_bytes(data)
    blobs = dict(extra or {})
    for desc in (manifest.config, *manifest.layers):
        if desc.digest not in blobs and not store.has_blob(desc.digest):
            blobs[desc.digest] = registry.get_blob(reference.repository, desc.digest,
                                                   size=desc.size)
    with store.lock():
        for digest, blob in blobs.items():
            store.write_blob(blob, digest)
        store.write_blob(data)
        store.tag(f"{reference.name}:{signature_tag(manifest_digest)}",
                  Descriptor(manifest.media_type, sha256_digest(data), len(data)))


def sign_reference(ref: str, key: str, *, password: str | None = None, insecure: bool = False,
                   ca_bundle: str | None = None) -> SignResult:
    """`ebpm sign REF --key K`: sign the manifest REF names (its digest, or its tag's)."""
    from ebpm.connect import parse_reference, registry_for

    reference = parse_reference(ref)
    client = registry_for(reference.registry, insecure=insecure, ca_bundle=ca_bundle)
    digest = reference.digest
    if not digest:
        desc = client.head_manifest(reference.repository, reference.identifier)
        if desc is None:
            raise NotFoundError(f"{reference}: no such manifest in the registry",
                                hint="push it first, or check the tag")
        digest = desc.digest
    return sign(reference, digest, key, registry=client, password=password)


# -- enforcing the policy ---------------------------------------------------------------------


def _from_record(entry: dict[str, Any], repository: str, digest: str) -> Verification:
    return Verification(
        repository=repository, digest=digest, status=VERIFIED,
        signers=tuple(Signer(**s) for s in entry.get("signers", [])), rejected=(),
        policy=str(entry.get("policy", "")), rule=str(entry.get("rule", "")),
        signature=str(entry.get("signature", "")), cached=True,
    )


def _records(store: Store, digest: str) -> dict[str, Any]:
    record = store.verified(digest) or {}
    entries = record.get("repositories") if record.get("v") == _RECORD_VERSION else None
    return dict(entries) if isinstance(entries, dict) else {}


def _check_content(store: Store, digest: str) -> None:
    """The package manifest and every blob it names are in the store, intact."""
    _, manifest = store.read_manifest(digest)
    for desc in (manifest.config, *manifest.layers):
        store.read_blob(desc.digest, size=desc.size)


def _check_signatures(store: Store, repository: str, digest: str, sig_digest: str,
                      rule: Rule) -> tuple[list[Signer], list[str]]:
    from ebpm.keys import load_public
    from ebpm.oci import signature as sig

    data = store.read_blob(sig_digest)
    parsed = sig.parse_manifest(data, where=f"signature manifest {sig_digest}")
    keys = [(k, load_public(k.pem, where=k.source)) for k in rule.keys]
    signers: list[Signer] = []
    rejected: list[str] = []
    if not parsed.signatures:
        rejected.append("the signature manifest holds no simple-signing layer")
    for n, layer in enumerate(parsed.signatures, 1):
        label = f"signature {n}"
        desc = layer.descriptor
        if desc.size > sig.MAX_PAYLOAD_SIZE:
            rejected.append(f"{label}: payload of {desc.size} bytes is too large")
            continue
        try:
            payload_bytes = store.read_blob(desc.digest, size=desc.size)
            payload = sig.parse_payload(payload_bytes, where=f"{label}: payload")
            if payload.digest != digest:
                raise SignatureError(f"{label}: signs another manifest ({payload.digest})")
            if sig.docker_reference(payload.docker_reference) != sig.docker_reference(
                    repository):
                raise SignatureError(
                    f"{label}: signed for another repository ({payload.docker_reference})"
                )
            if not layer.signature:
                raise SignatureError(f"{label}: no {sig.SIGNATURE_ANNOTATION} annotation")
            sig.decode_signature(layer.signature, where=f"{label}")
        except (SignatureError, StoreError, DigestMismatchError) as err:
            rejected.append(err.message)
            continue
        match = next(
            (k for k, public in keys if sig.verify_payload(payload_bytes, layer.signature, public)),
            None,
        )
        if match is None:
            rejected.append(f"{label}: not made by a key trusted for {repository} "
                            "(an untrusted key, or a damaged signature)")
            continue
        signers.append(Signer(match.key_id, match.source, payload.docker_reference, desc.digest))
    return signers, rejected


def enforce(store: Store, reference: Reference, manifest_digest: str, *,
            allow_unsigned: bool = False, fresh: bool = False) -> Verification:
    """Check the package `manifest_digest` of `reference`'s repository against the trust policy,
    from the store only. Raises SignatureError when the policy requires a trusted signature and
    there is none (absent, untrusted, malformed, of another digest or repository), and
    PolicyError when the policy is broken. A verified outcome is recorded with the policy's
    fingerprint; a record made under another policy or signature manifest is checked again
    (`fresh` always checks again)."""
    from ebpm.trust import load_policy

    policy = load_policy()
    fingerprint = policy.fingerprint
    repository = reference.name
    rule = policy.rule_for(repository)
    rule_text = f"{rule.scope} ({rule.where})"
    sig_desc = store.resolve(f"{repository}:{signature_tag(manifest_digest)}")
    sig_digest = sig_desc.digest if sig_desc is not None else ""

    records = _records(store, manifest_digest)
    entry = records.get(repository)
    if (not fresh and isinstance(entry, dict) and entry.get("policy") == fingerprint
            and entry.get("signature") == sig_digest and store.has_blob(manifest_digest)):
        try:
            return _from_record(entry, repository, manifest_digest)
        except TypeError:
            pass  # a damaged record: verify again

    if records.pop(repository, None) is not None:
        _save_records(store, manifest_digest, records)
    _check_content(store, manifest_digest)
    signers: list[Signer] = []
    rejected: list[str] = []
    if sig_desc is not None:
        try:
            signers, rejected = _check_signatures(store, repository, manifest_digest, sig_digest,
                                                  rule)
        except (SignatureError, StoreError, DigestMismatchError, ManifestError) as err:
            rejected = [f"signature manifest: {err.message}"]

    common = dict(repository=repository, digest=manifest_digest, policy=fingerprint,
                  rule=rule_text, signature=sig_digest, cached=False)
    if signers:
        verification = Verification(status=VERIFIED, signers=tuple(signers),
                                    rejected=tuple(rejected), **common)  # type: ignore[arg-type]
        records[repository] = {
            "policy": fingerprint, "rule": rule_text, "signature": sig_digest,
            "signers": [s.__dict__ for s in signers],
        }
        _save_records(store, manifest_digest, records)
        return verification
    if rule.require and not allow_unsigned:
        raise _refusal(reference, manifest_digest, rule, rule_text, sig_desc is not None,
                       rejected)
    status = UNSIGNED_ALLOWED if rule.require else NOT_REQUIRED
    return Verification(status=status, signers=(), rejected=tuple(rejected),
                        **common)  # type: ignore[arg-type]


def _save_records(store: Store, digest: str, records: dict[str, Any]) -> None:
    if records:
        store.mark_verified(digest, {"v": _RECORD_VERSION, "repositories": records})
    else:
        store.clear_verified(digest)


def _refusal(reference: Reference, digest: str, rule: Rule, rule_text: str, has_signature: bool,
             rejected: list[str]) -> SignatureError:
    what = f"{reference.name}@{digest}"
    if not rule.keys:
        return SignatureError(
            f"{what}: no key is trusted for {reference.name} (policy: {rule_text})",
            hint=f"trust the publisher's public key: `ebpm trust add '{reference.name}' --key "
                 "FILE.pub`; or pass --allow-unsigned (not recommended)",
        )
    if not has_signature:
        return SignatureError(
            f"{what}: not signed (no {signature_tag(digest)} in {reference.name}); "
            f"the policy requires a signature (rule {rule_text})",
            hint="ask the publisher to sign it (`ebpm sign`), or pass --allow-unsigned "
                 "(not recommended)",
        )
    return SignatureError(
        f"{what}: no trusted signature: " + "; ".join(rejected or ["none"]),
        hint=f"the policy (rule {rule_text}) trusts "
             + ", ".join(k.key_id[:19] for k in rule.keys)
             + "; nothing was marked verified",
    )


def verify(ref: str, *, offline: bool | None = None, insecure: bool = False,
           ca_bundle: str | None = None) -> Verification:
    """`ebpm verify REF`: check a package's signatures against the policy, from the store when it
    holds the package (no network), else pulling it first."""
    from ebpm import config
    from ebpm.connect import parse_reference
    from ebpm.oci.layout import Store
    from ebpm.pull import find_cached, resolve_tag

    reference = parse_reference(ref)
    store = Store()
    offline = config.offline() if offline is None else offline
    resolved = reference
    if not reference.tag and not reference.digest:
        with contextlib.suppress(NotFoundError):
            resolved = resolve_tag(reference, store, True, None)
    desc = find_cached(store, resolved)
    if desc is None:
        if offline:
            raise OfflineError(f"{reference}: not in the store (offline)",
                               hint="pull it once while online, or `ebpm load` a saved archive")
        from ebpm.pull import pull

        package = pull(reference, insecure=insecure, ca_bundle=ca_bundle, store=store)
        verification = package.verification
        if not isinstance(verification, Verification):
            raise SignatureError(f"{reference}: the pull did not verify signatures")
        return verification
    return enforce(store, resolved.with_digest(desc.digest), desc.digest, fresh=True)


# -- air gap: save and load -------------------------------------------------------------------

_DIR_MODE, _FILE_MODE = 0o755, 0o644


def _package_blobs(store: Store, digest: str) -> list[str]:
    _, manifest = store.read_manifest(digest)
    return [digest, manifest.config.digest, *(d.digest for d in manifest.layers)]


def save(refs: list[str], output: Path, *, allow_unsigned: bool = False) -> list[str]:
    """Write the packages `refs` (from the store) and their signatures as one deterministic
    OCI-layout tarball; returns the names saved. Each is checked against the policy first."""
    import io
    import json
    import tarfile

    from ebpm.connect import parse_reference
    from ebpm.oci.layout import REF_NAME, Store, atomic_write
    from ebpm.oci.model import INDEX_V1
    from ebpm.pull import find_cached, resolve_tag, store_name

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
        sig_name = f"{reference.name}:{signature_tag(desc.digest)}"
        sig_desc = store.resolve(sig_name)
        if sig_desc is not None:
            entries[sig_name] = {**sig_desc.to_dict(), "annotations": {REF_NAME: sig_name}}
            digests.update(_package_blobs(store, sig_desc.digest))
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
    atomic_write(Path(output), buf.getvalue())
    return sorted(k for k in entries if not k.endswith(".sig"))


_MAX_ARCHIVE_MEMBER = 512 * 1024 * 1024


def _read_archive(path: Path) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    import json
    import re
    import tarfile

    from ebpm.oci.model import sha256_digest

    blob_re = re.compile(r"^(?:\./)?blobs/sha256/([a-f0-9]{64})$")
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
            match = blob_re.match(name)
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
        manifest = Manifest.from_bytes(blobs[desc.digest], where=f"load {path}: {name}")
        needed.update(d.digest for d in (manifest.config, *manifest.layers))
        clean = Descriptor(desc.media_type, desc.digest, desc.size,
                           artifact_type=desc.artifact_type)
        if reference.tag.endswith(".sig"):
            signatures.append((name, clean))
        else:
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
                    records = _records(store, desc.digest)
                    if records.pop(reference.name, None) is not None:
                        _save_records(store, desc.digest, records)
            for digest in written:
                with contextlib.suppress(FileNotFoundError):
                    store.blob_path(digest).unlink()
            raise
        for name, _, desc in packages:
            store.tag(name, desc)
    return loaded
