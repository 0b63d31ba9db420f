"""Keyless (Sigstore) signatures, verified offline against a pinned `trusted_root.json`.

The verification itself is the `sigstore` package's (`sigstore.verify.Verifier`): the signing
certificate chains to a Fulcio CA of the trusted root at the time the transparency log saw the
signature, its SCT verifies against a CT log key, the Rekor entry's inclusion proof and signed
checkpoint (or, for v0.1 bundles, its signed entry timestamp) verify against a Rekor key, and
the signature verifies with the certificate's key. Nothing is fetched: the trusted root is a
file the policy names. What this module adds is the policy: which certificate identities and
OIDC issuers a rule trusts (exact or regular expressions, as cosign's flags), and the bridge
from cosign's legacy keyless annotations to a v0.1 bundle.

`sigstore` and `cryptography` are imported only here, only when a keyless signature is checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import SignatureError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from ebpm.trust.policy import KeylessIdentity

__all__ = [
    "KeylessSigner", "CERTIFICATE_ANNOTATION", "CHAIN_ANNOTATION", "REKOR_BUNDLE_ANNOTATION",
    "verify_bundle", "verify_cosign_keyless", "cosign_bundle", "certificate_identity",
]

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
_BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_OTHERNAME = "1.3.6.1.4.1.57264.1.7"
IN_TOTO = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class KeylessSigner:
    """Who a verified keyless signature names: the certificate's identities and issuer."""

    identity: str  # the trust rule's identity that matched
    identities: tuple[str, ...]  # the certificate's SAN identities
    issuer: str
    payload_type: str = ""  # for DSSE bundles: the envelope's payload type
    payload: bytes = b""  # for DSSE bundles: the verified payload


def _der_utf8(value: bytes) -> str:
    """The text of a DER UTF8String (Fulcio's v2 extensions), or the raw bytes (v1)."""
    if len(value) >= 2 and value[0] == 0x0C and value[1] < 0x80 and len(value) == 2 + value[1]:
        return value[2:].decode("utf-8", "replace")
    return value.decode("utf-8", "replace")


def certificate_identity(cert: Certificate) -> tuple[list[str], str]:
    """The SAN identities (emails, URIs, Sigstore other names) and the OIDC issuer."""
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = list(san.get_values_for_type(x509.RFC822Name))
        names += san.get_values_for_type(x509.UniformResourceIdentifier)
        names += [_der_utf8(o.value) for o in san.get_values_for_type(x509.OtherName)
                  if o.type_id.dotted_string == _OTHERNAME]
    except x509.ExtensionNotFound:
        names = []
    issuer = ""
    for oid in (_ISSUER_V2, _ISSUER_V1):
        try:
            ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            continue
        issuer = _der_utf8(ext.value)  # type: ignore[attr-defined]
        break
    return names, issuer


class _Policy:
    """A sigstore VerificationPolicy: the certificate matches one of the rule's identities."""

    def __init__(self, identities: tuple[KeylessIdentity, ...]) -> None:
        self.identities = identities
        self.matched: KeylessIdentity | None = None
        self.seen: tuple[list[str], str] = ([], "")

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError

        names, issuer = certificate_identity(cert)
        self.seen = (names, issuer)
        self.matched = next((k for k in self.identities if k.matches(names, issuer)), None)
        if self.matched is None:
            raise VerificationError(
                f"certificate identity {', '.join(names) or '(none)'} (issuer {issuer or '?'}) "
                "is not one the policy trusts: " + "; ".join(str(k) for k in self.identities))


_verifiers: dict[Path, Any] = {}


def _verifier(trusted_root: Path) -> Any:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    verifier = _verifiers.get(trusted_root)
    if verifier is None:
        try:
            root = TrustedRoot.from_file(str(trusted_root))
        except Exception as err:  # sigstore raises its own and pydantic's errors here
            raise SignatureError(
                f"Sigstore trusted root {trusted_root}: cannot be used: {err}",
                hint="install a trusted_root.json (e.g. from the sigstore/root-signing "
                     "repository) there, or name one with trusted_root = PATH",
            ) from err
        verifier = _verifiers[trusted_root] = Verifier(trusted_root=root)
    return verifier


def verify_bundle(bundle_json: bytes, artifact: bytes | None, *, identities: tuple[
        KeylessIdentity, ...], trusted_root: Path, where: str = "bundle") -> KeylessSigner:
    """Verify a Sigstore bundle (v0.1-v0.3) offline. A message-signature bundle signs
    `artifact`; a DSSE bundle carries its payload (returned for the caller to check)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(bundle_json)
    except (SigstoreError, ValueError) as err:
        raise SignatureError(f"{where}: not a valid Sigstore bundle: {err}") from err
    verifier = _verifier(trusted_root)
    policy = _Policy(identities)
    payload_type, payload = "", b""
    try:
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
        else:
            if artifact is None:
                raise SignatureError(f"{where}: a message signature with nothing to check "
                                     "it against")
            verifier.verify_artifact(artifact, bundle, policy)
    except SigstoreError as err:
        raise SignatureError(f"{where}: keyless verification failed: {err}") from err
    assert policy.matched is not None
    names, issuer = policy.seen
    return KeylessSigner(str(policy.matched), tuple(names), issuer, payload_type, payload)


def _pem_to_der(pem: str) -> list[bytes]:
    from cryptography import x509

    try:
        return [c.public_bytes(_der()) for c in x509.load_pem_x509_certificates(pem.encode())]
    except ValueError as err:
        raise SignatureError(f"certificate: not valid PEM: {err}") from err


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def cosign_bundle(payload: bytes, signature: str, certificate: str, chain: str,
                  rekor_bundle: str) -> bytes:
    """A v0.1 Sigstore bundle from cosign's legacy keyless annotations: the signing
    certificate (+ chain), the signature over `payload`, and the Rekor SET bundle."""
    try:
        rekor = json.loads(rekor_bundle)
        entry = rekor["Payload"]
        body = json.loads(base64.b64decode(entry["body"]))
        tlog = {
            "logIndex": str(int(entry["logIndex"])),
            "logId": {"keyId": base64.b64encode(bytes.fromhex(entry["logID"])).decode()},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "integratedTime": str(int(entry["integratedTime"])),
            "inclusionPromise": {"signedEntryTimestamp": rekor["SignedEntryTimestamp"]},
            "canonicalizedBody": entry["body"],
        }
    except (ValueError, KeyError, TypeError) as err:
        raise SignatureError(f"{REKOR_BUNDLE_ANNOTATION}: not a Rekor bundle: {err}") from err
    certs = _pem_to_der(certificate) + (_pem_to_der(chain) if chain else [])
    message_digest = base64.b64encode(hashlib.sha256(payload).digest()).decode()
    doc = {
        "mediaType": _BUNDLE_V01,
        "verificationMaterial": {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": base64.b64encode(c).decode()} for c in certs]},
            "tlogEntries": [tlog],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": message_digest},
            "signature": signature,
        },
    }
    return json.dumps(doc).encode()


def verify_cosign_keyless(payload: bytes, signature: str, annotations: dict[str, str], *,
                          identities: tuple[KeylessIdentity, ...], trusted_root: Path,
                          where: str) -> KeylessSigner:
    """Verify a legacy cosign signature layer made keyless (certificate + Rekor bundle
    annotations) over the simple-signing `payload`."""
    rekor = annotations.get(REKOR_BUNDLE_ANNOTATION)
    if not rekor:
        raise SignatureError(f"{where}: a certificate but no {REKOR_BUNDLE_ANNOTATION} "
                             "(a transparency log entry is needed to verify offline)")
    bundle = cosign_bundle(payload, signature, annotations[CERTIFICATE_ANNOTATION],
                           annotations.get(CHAIN_ANNOTATION, ""), rekor)
    return verify_bundle(bundle, payload, identities=identities, trusted_root=trusted_root,
                         where=where)
