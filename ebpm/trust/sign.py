"""Signing: add a cosign-format signature for a pushed package to its registry."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ebpm.errors import NotFoundError, RegistryError, SignatureError
from ebpm.oci.reference import Reference
from ebpm.oci.signature import signature_tag

if TYPE_CHECKING:
    from ebpm.oci.layout import Store
    from ebpm.oci.remote import Registry


__all__ = ["SignResult", "sign", "sign_reference"]

_SIGN_ATTEMPTS = 8
_SETTLE = 0.05  # seconds for a concurrent signer's write to land before we read back


@dataclass(frozen=True)
class SignResult:
    """A signature added (or found already there) in the registry."""

    reference: Reference  # the signed package, with its digest
    digest: str  # the signature manifest's digest
    key_id: str
    added: bool  # False when this key had already signed this digest



def sign(
    reference: Reference, manifest_digest: str, key_path: str, *, registry: Registry | None = None,
    password: str | None = None, store: Store | None = None,
) -> SignResult:
    """Sign `manifest_digest` of `reference`'s repository with the private key `key_path` (a key
    name or a file), adding a layer to the signature manifest at `sha256-<hex>.sig` and keeping
    every other signer's. The local store gets the new signature manifest too when it holds the
    package, so `ebpm verify` sees it offline."""
    from ebpm.oci import signature as sig
    from ebpm.oci.model import MANIFEST_V1, Manifest, sha256_digest
    from ebpm.trust.keys import key_id, public_der

    if registry is None:
        from ebpm.access import registry_for

        registry = registry_for(reference.registry)
    from cryptography.hazmat.primitives import serialization

    from ebpm.trust.keys import load_private

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
    from ebpm.access import parse_reference, registry_for

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


