"""Signing: add a cosign-format signature for a pushed package to its registry."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ebpm.errors import NotFoundError, RegistryError, SignatureError
from ebpm.oci.model import Descriptor
from ebpm.oci.reference import Reference
from ebpm.oci.signature import signature_tag

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.oci.remote import Registry


__all__ = ["SignResult", "sign", "sign_reference", "racy_tag_warning"]

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
    reference: Reference, manifest_digest: str, key_path: str | EllipticCurvePrivateKey, *,
    registry: Registry | None = None, password: str | None = None, store: Store | None = None,
    referrers: bool = False,
) -> SignResult:
    """Sign `manifest_digest` of `reference`'s repository with the private key `key_path` (a key
    name or a file, or the key already loaded: `push` loads it before it uploads), adding a
    layer to the signature manifest at `sha256-<hex>.sig` and keeping every other signer's;
    with `referrers`, push an OCI 1.1 signature referrer instead (cosign's
    `--registry-referrers-mode=oci-1-1` form). The local store gets the signatures too when it
    holds the package, so `ebpm verify` sees them offline."""
    from ebpm.digests import sha256_digest
    from ebpm.oci import signature as sig
    from ebpm.oci.model import MANIFEST_V1, Manifest
    from ebpm.trust.keys import key_id, public_der

    if registry is None:
        from ebpm.access import registry_for

        registry = registry_for(reference.registry)
    from cryptography.hazmat.primitives import serialization

    from ebpm.trust.keys import load_private

    key = load_private(key_path, password=password) if isinstance(key_path, str) else key_path
    public = key.public_key()
    kid = key_id(public_der(public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)))
    payload = sig.make_payload(sig.docker_reference(reference.name), manifest_digest)
    payload_digest = sha256_digest(payload)
    tag = signature_tag(manifest_digest)
    repo = reference.repository
    where = f"{reference.name}:{tag}"
    if referrers:
        return _sign_referrer(reference, manifest_digest, registry, payload, kid,
                              lambda: sig.sign_payload(payload, key), public, store)

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
        _store_signatures(store, reference, manifest_digest, registry)
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
            _store_signatures(store, reference, manifest_digest, registry)
            return SignResult(reference.with_digest(manifest_digest), found[1], kid, True)
    raise SignatureError(
        f"{where}: the signature did not stick: other signers keep replacing the manifest",
        hint="sign again in a moment",
    )


def _sign_referrer(reference: Reference, manifest_digest: str, registry: Registry,
                   payload: bytes, kid: str, make_signature: Callable[[], str],
                   public: EllipticCurvePublicKey, store: Store | None) -> SignResult:
    """Push a cosign OCI 1.1 signature referrer, and list it in the fallback tag's index where
    the registry has no referrers API (read, add, write, read back: concurrent signers)."""
    from ebpm.digests import sha256_digest
    from ebpm.oci import signature as sig
    from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE, INDEX_V1, MANIFEST_V1
    from ebpm.oci.referrers import (
        COSIGN_SIGNATURE_ARTIFACT,
        build_index,
        is_bundle_type,
        is_signature_referrer,
        parse_index,
        referrers_tag,
    )

    repo = reference.repository
    payload_digest = sha256_digest(payload)
    for desc in registry.referrers(repo, manifest_digest):
        if not is_signature_referrer(desc) or is_bundle_type(desc.artifact_type):
            continue
        with contextlib.suppress(NotFoundError):
            data, _, _ = registry.get_manifest(repo, desc.digest)
            parsed = sig.parse_manifest(data, where=f"{reference.name}@{desc.digest}")
            if any(layer.descriptor.digest == payload_digest
                   and sig.verify_payload(payload, layer.signature, public)
                   for layer in parsed.signatures):
                _store_signatures(store, reference, manifest_digest, registry)
                return SignResult(reference.with_digest(manifest_digest), desc.digest, kid,
                                  False)
    subject = registry.head_manifest(repo, manifest_digest)
    if subject is None:
        raise NotFoundError(f"{reference.name}@{manifest_digest}: no such manifest",
                            hint="push the package first")
    layer = Descriptor(COSIGN_SIMPLESIGNING_TYPE, payload_digest, len(payload),
                       annotations={sig.SIGNATURE_ANNOTATION: make_signature()})
    data, config = sig.build_referrer(subject, (layer,))
    for attempt in range(_SIGN_ATTEMPTS):
        registry.push_blob(repo, payload_digest, payload)
        registry.push_blob(repo, sha256_digest(config), config)
        try:
            digest = registry.put_manifest(repo, sha256_digest(data), data, MANIFEST_V1)
            break
        except RegistryError as err:
            # signers of one digest upload the same payload blob; while another's upload of
            # it commits, distribution may call it unknown: upload again and retry
            if err.status != 400 or attempt + 1 == _SIGN_ATTEMPTS:
                raise
            time.sleep(_SETTLE * (1 + random.random()))
    entry = Descriptor(MANIFEST_V1, digest, len(data),
                       artifact_type=COSIGN_SIGNATURE_ARTIFACT)
    if registry.referrers_api(repo, manifest_digest) is None:
        tag = referrers_tag(manifest_digest)

        def listed() -> tuple[bool, list[Descriptor]]:
            try:
                current = parse_index(registry.get_manifest(repo, tag)[0])
            except NotFoundError:
                current = []
            return any(d.digest == digest for d in current), current

        seen = 0  # reads in a row that list ours
        for attempt in range(_SIGN_ATTEMPTS):
            there, current = listed()
            seen = seen + 1 if there else 0
            if seen == 2:
                break
            if not there:
                registry.put_manifest(repo, tag, build_index([*current, entry]), INDEX_V1)
            # no compare-and-swap on tags: let concurrent signers land, then read back, twice:
            # a signer that read the index before our write may write it back without ours
            # after our first read-back (seen once in a CI run, 4 signers on a busy machine)
            time.sleep(_SETTLE * (1 + attempt) * (1 + random.random()))
        else:
            if not listed()[0]:
                raise SignatureError(
                    f"{reference.name}:{tag}: the referrer did not stick: other signers keep "
                    "replacing the index", hint="sign again in a moment")
    _store_signatures(store, reference, manifest_digest, registry)
    return SignResult(reference.with_digest(manifest_digest), digest, kid, True)


def _store_signatures(store: Store | None, reference: Reference, manifest_digest: str,
                      registry: Registry) -> None:
    """Put the package's signatures (every form) into the local store if it holds the
    package."""
    from ebpm.oci.layout import Store
    from ebpm.trust import discovery

    store = store or Store()
    if not store.has_blob(manifest_digest):
        return
    discovery.keep(store, discovery.fetch(registry, store, reference.name, reference.repository,
                                          manifest_digest))


def sign_reference(ref: str, key: str, *, password: str | None = None,
                   access: RegistryAccess | None = None, referrers: bool = False) -> SignResult:
    """`ebpm sign REF --key K`: sign the manifest REF names (its digest, or its tag's)."""
    from ebpm.access import RegistryAccess, parse_reference

    reference = parse_reference(ref)
    client = (access or RegistryAccess.from_env()).client(reference.registry)
    digest = reference.digest
    if not digest:
        # Never the digest a HEAD (or a header) claims: the manifest's own bytes, hashed here.
        try:
            _, _, digest = client.get_manifest(reference.repository, reference.identifier)
        except NotFoundError as err:
            raise NotFoundError(f"{reference}: no such manifest in the registry",
                                hint="push it first, or check the tag") from err
    return sign(reference, digest, key, registry=client, password=password, referrers=referrers)


def racy_tag_warning(ref: str, result: SignResult) -> str | None:
    """What to tell the user who signed by tag (as cosign does): the tag may have moved between
    the look-up and the signature; the digest signed is named so they can check it."""
    from ebpm.access import parse_reference

    if parse_reference(ref).digest:
        return None
    return (f"signing by tag is racy: the tag may change between reading and signing; signed "
            f"{result.reference.digest} (sign {result.reference.name}@{result.reference.digest} "
            "to be sure)")


