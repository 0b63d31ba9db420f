"""cosign's legacy signature format: payloads, `sha256-<hex>.sig` manifests, ECDSA sign/verify.

A signature manifest is an OCI image manifest at tag `sha256-<hex>.sig` in the signed
package's repository, holding one `application/vnd.dev.cosign.simplesigning.v1+json` layer per
signature. Each layer's blob is the payload (what was signed: the repository and the manifest
digest) and its annotation `dev.cosignproject.cosign/signature` is the standard-base64 DER
ECDSA-P256 signature over the SHA-256 of the payload bytes. This is exactly what
`cosign sign --key` writes and `cosign verify --key pub.pem --insecure-ignore-tlog=true` accepts.

Pure: no I/O. `cryptography` is imported only by the functions that sign or verify.
"""

from __future__ import annotations

import binascii  # base64 would bring struct and re: its b64 functions are these calls
import json

from ebpm.canonical import canonical_json
from ebpm.digests import sha256_digest
from ebpm.errors import SignatureError
from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE, Descriptor, Manifest
from ebpm.oci.referrers import COSIGN_SIGNATURE_ARTIFACT
from ebpm.record import record

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any

    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

__all__ = [
    "SIGNATURE_ANNOTATION",
    "PAYLOAD_TYPE",
    "IMAGE_CONFIG_TYPE",
    "Payload",
    "SignatureLayer",
    "SignatureManifest",
    "signature_tag",
    "docker_reference",
    "make_payload",
    "parse_payload",
    "sign_payload",
    "verify_payload",
    "prepare_verify",
    "known_config",
    "known_blobs",
    "encode_signature",
    "decode_signature",
    "build_manifest",
    "add_signature",
    "parse_manifest",
    "build_referrer",
]

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
# cosign's signature manifests carry an ordinary image config whose diff_ids are the layers.
IMAGE_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
_ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_PAYLOAD_SIZE = 128 * 1024  # cosign's own payloads are a few hundred bytes


def signature_tag(digest: str) -> str:
    """cosign's legacy signature tag of a manifest digest: `sha256-<hex>.sig`."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}.sig"


_DOCKER_HUB = {"docker.io", "registry-1.docker.io", "index.docker.io"}


def docker_reference(name: str) -> str:
    """The `docker-reference` cosign writes for `registry/repository`: go-containerregistry's
    `Repository.Name()`, which spells Docker Hub `index.docker.io` and adds `library/`."""
    registry, _, repository = name.partition("/")
    if registry in _DOCKER_HUB:
        if "/" not in repository:
            repository = f"library/{repository}"
        return f"index.docker.io/{repository}"
    return name


@record
class Payload:
    """What a signature says: this repository's manifest `digest` is vouched for."""

    docker_reference: str  # registry/repository, without tag or digest
    digest: str  # sha256:<hex> of the signed manifest
    optional: dict[str, Any] | None = None


def make_payload(docker_reference: str, digest: str,
                 optional: dict[str, Any] | None = None) -> bytes:
    """The payload bytes cosign signs: compact JSON, keys in cosign's (= sorted) order."""
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": dict(optional) if optional is not None else {},
    }
    return canonical_json(doc)


def parse_payload(data: bytes, *, where: str = "signature payload") -> Payload:
    """Parse a simple-signing payload (as cosign writes it, `optional` may be null)."""
    if len(data) > MAX_PAYLOAD_SIZE:
        raise SignatureError(f"{where}: {len(data)} bytes is too large for a payload")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise SignatureError(f"{where}: not valid JSON: {err}") from err
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise SignatureError(f"{where}: no 'critical' section")
    if critical.get("type") != PAYLOAD_TYPE:
        raise SignatureError(f"{where}: type is {critical.get('type')!r}, want {PAYLOAD_TYPE!r}")
    identity, image = critical.get("identity"), critical.get("image")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(reference, str) or not isinstance(digest, str):
        raise SignatureError(
            f"{where}: critical.identity.docker-reference and "
            "critical.image.docker-manifest-digest are required"
        )
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise SignatureError(f"{where}: 'optional' must be an object or null")
    return Payload(docker_reference=reference, digest=digest, optional=optional)


def encode_signature(der: bytes) -> str:
    """Standard base64 (with padding), as in cosign's annotation."""
    return binascii.b2a_base64(der, newline=False).decode("ascii")


def decode_signature(text: str, *, where: str = "signature") -> bytes:
    try:
        der = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as err:
        raise SignatureError(f"{where}: not valid base64: {err}") from err
    if not der:
        raise SignatureError(f"{where}: empty")
    return der


def sign_payload(payload: bytes, key: EllipticCurvePrivateKey) -> str:
    """Sign `payload` with ECDSA over SHA-256; returns the base64 DER signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return encode_signature(key.sign(payload, ec.ECDSA(hashes.SHA256())))


_ECDSA_SHA256: Any = None


def _ecdsa_sha256() -> Any:
    """`ec.ECDSA(hashes.SHA256())` for verifying, made without ECDSA's constructor: that imports
    cryptography's whole OpenSSL backend (ciphers, ~4 ms of a cold pull) only to check a
    deterministic-signing flag that verification never reads. The algorithm is the same
    public class; only `algorithm` is given directly (see "Signature check" in
    docs/architecture.md for the figures)."""
    global _ECDSA_SHA256
    if _ECDSA_SHA256 is None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        class _VerifyECDSA(ec.ECDSA):
            def __init__(self) -> None:  # no backend import: nothing to check for verifying
                pass

            algorithm = hashes.SHA256()  # type: ignore[assignment]

        _ECDSA_SHA256 = _VerifyECDSA()
    return _ECDSA_SHA256


def prepare_verify() -> None:
    """Import what `verify_payload` takes (cryptography's EC and hash primitives) ahead of the
    check: a pull does it while its requests are in flight."""
    _ecdsa_sha256()


def verify_payload(payload: bytes, signature: str, key: EllipticCurvePublicKey) -> bool:
    """True when `signature` (base64 DER ECDSA/SHA-256) is `key`'s signature of `payload`."""
    from cryptography.exceptions import InvalidSignature

    try:
        der = decode_signature(signature)
    except SignatureError:
        return False
    try:
        key.verify(der, payload, _ecdsa_sha256())
    except (InvalidSignature, ValueError):
        return False
    return True


@record
class SignatureLayer:
    """One signature in a signature manifest: the payload's descriptor and its signature."""

    descriptor: Descriptor

    @property
    def signature(self) -> str:
        return self.descriptor.annotations.get(SIGNATURE_ANNOTATION, "")


@record
class SignatureManifest:
    """A parsed signature manifest: its signature layers (other layers are ignored)."""

    manifest: Manifest
    signatures: tuple[SignatureLayer, ...]


def _config_bytes(layers: tuple[Descriptor, ...]) -> bytes:
    """The image config cosign writes: an empty image whose diff_ids are the payloads."""
    return canonical_json({
        "architecture": "",
        "config": {},
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"diff_ids": [d.digest for d in layers], "type": "layers"},
    })


def known_config(manifest: Manifest) -> bytes | None:
    """The config blob of a signature manifest when it is the one cosign (and ebpm) write,
    computed from the layers instead of fetched (one request fewer per signature manifest);
    None when the manifest names another config (then it is fetched, and checked by digest)."""
    config = _config_bytes(manifest.layers)
    want = manifest.config
    if want.size == len(config) and want.digest == sha256_digest(config):
        return config
    return None


def known_blobs(manifest: Manifest, name: str, subject: str) -> dict[str, bytes]:
    """The blobs of a signature manifest that its manifest and what it signs make: cosign's
    config (made from the layers) and a simple-signing payload that says exactly "`name`'s
    `subject`" (what cosign and ebpm sign; `name` is registry/repository), each recognised by
    its digest: digest -> bytes. A pull downloads none of them, and the store keeps none of
    them as files of their own (it makes them again when they are read)."""
    known: dict[str, bytes] = {}
    config = known_config(manifest)
    if config is not None:
        known[manifest.config.digest] = config
    payload = make_payload(docker_reference(name), subject)
    # ebpm writes `"optional":{}`, cosign `"optional":null` (canonical JSON: compact, sorted)
    candidates = (payload, payload.replace(b'"optional":{}', b'"optional":null'))
    by_digest = {sha256_digest(c): c for c in candidates}
    for desc in manifest.layers:
        data = by_digest.get(desc.digest)
        if desc.media_type == COSIGN_SIMPLESIGNING_TYPE and data is not None \
                and desc.size == len(data):
            known[desc.digest] = data
    return known


def build_manifest(layers: tuple[Descriptor, ...]) -> tuple[bytes, bytes]:
    """A signature manifest over `layers`; returns (manifest bytes, config bytes)."""
    config = _config_bytes(layers)
    manifest = Manifest(
        config=Descriptor(IMAGE_CONFIG_TYPE, sha256_digest(config), len(config)),
        layers=layers,
    )
    return manifest.to_bytes(), config


def add_signature(existing: Manifest | None, payload: bytes,
                  signature: str) -> tuple[bytes, bytes, bool]:
    """Add one signature layer to `existing` (or start a manifest), keeping every other signer.

    Returns (manifest bytes, config bytes, added): `added` is False when exactly this
    signature is already there.
    """
    layer = Descriptor(
        COSIGN_SIMPLESIGNING_TYPE, sha256_digest(payload), len(payload),
        annotations={SIGNATURE_ANNOTATION: signature},
    )
    layers = tuple(existing.layers) if existing is not None else ()
    added = layer not in layers
    if added:
        layers = (*layers, layer)
    data, config = build_manifest(layers)
    return data, config, added


def parse_manifest(data: bytes, *, where: str = "signature manifest") -> SignatureManifest:
    """Parse a signature manifest and pick its simple-signing layers."""
    from ebpm.errors import ManifestError, TooLargeError

    try:
        manifest = Manifest.from_bytes(data, where=where)
    except (ManifestError, TooLargeError) as err:
        raise SignatureError(err.message, hint=err.hint) from err
    layers = tuple(
        SignatureLayer(d) for d in manifest.layers if d.media_type == COSIGN_SIMPLESIGNING_TYPE
    )
    return SignatureManifest(manifest=manifest, signatures=layers)


def build_referrer(subject: Descriptor, layers: tuple[Descriptor, ...]) -> tuple[bytes, bytes]:
    """cosign's OCI 1.1 signature referrer (`cosign sign --registry-referrers-mode=oci-1-1`):
    the signature manifest with config type `application/vnd.dev.cosign.artifact.sig.v1+json`
    and `subject` naming the signed manifest. Returns (manifest bytes, config bytes)."""
    config = _config_bytes(layers)
    manifest = Manifest(
        config=Descriptor(COSIGN_SIGNATURE_ARTIFACT, sha256_digest(config), len(config)),
        layers=layers,
        subject=Descriptor(subject.media_type, subject.digest, subject.size),
    )
    return manifest.to_bytes(), config

