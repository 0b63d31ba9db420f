"""Keyless (Sigstore) signatures, verified offline against a pinned `trusted_root.json`.

The verification itself is the `sigstore` package's (`sigstore.verify.Verifier`): the signing
certificate chains to a Fulcio CA of the trusted root at the time the transparency log saw the
signature, its SCT verifies against a CT log key, the Rekor entry's inclusion proof and signed
checkpoint (or, for v0.1 bundles, its signed entry timestamp) verify against a Rekor key, and
the signature verifies with the certificate's key. Nothing is fetched: the trusted root is a
file the policy names. What this module adds is the policy: which certificate identities and
OIDC issuers a rule trusts (exact or regular expressions, as cosign's flags).

cosign's *legacy* keyless signatures (a `sha256-<hex>.sig` layer with certificate and Rekor
bundle annotations) carry only a signed entry timestamp, no inclusion proof, which `sigstore`'s
Verifier requires. `verify_cosign_legacy` checks them as cosign does offline, from `sigstore`'s
and `cryptography`'s parts (the trusted root's keyrings, its SCT check, a path validation at the
log's time): the signed entry timestamp, the chain, the SCT, the entry's consistency and the
signature. Rules accept them only with `legacy_keyless = true`.

`sigstore` and `cryptography` are imported only here, only when a keyless signature is checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import SignatureError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from ebpm.trust.policy import KeylessIdentity

__all__ = [
    "KeylessSigner", "CERTIFICATE_ANNOTATION", "CHAIN_ANNOTATION", "REKOR_BUNDLE_ANNOTATION",
    "IN_TOTO", "verify_bundle", "verify_cosign_legacy", "certificate_identity",
]

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_OTHERNAME = "1.3.6.1.4.1.57264.1.7"
IN_TOTO = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class KeylessSigner:
    """Who a verified keyless signature names: the certificate's identities and issuer."""

    identity: str  # the certificate identity (SAN) that the rule matched
    identities: tuple[str, ...]  # all the certificate's SAN identities
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


_verifiers: dict[tuple[Path, str], Any] = {}
_roots: dict[tuple[Path, str], Any] = {}


def _verifier(trusted_root: str | os.PathLike[str]) -> Any:
    """A Verifier for the trusted root file (one per path and content, per process)."""
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    from ebpm.digests import sha256

    trusted_root = Path(trusted_root)
    try:
        key = (trusted_root, sha256(trusted_root.read_bytes()).hexdigest())
    except OSError as err:
        raise SignatureError(f"Sigstore trusted root {trusted_root}: cannot read: "
                             f"{err.strerror}") from err
    verifier = _verifiers.get(key)
    if verifier is None:
        try:
            root = TrustedRoot.from_file(str(trusted_root))
        except Exception as err:  # sigstore raises its own and pydantic's errors here
            raise SignatureError(
                f"Sigstore trusted root {trusted_root}: cannot be used: {err}",
                hint="install a trusted_root.json (e.g. from the sigstore/root-signing "
                     "repository) there, or name one with trusted_root = PATH",
            ) from err
        verifier = _verifiers[key] = Verifier(trusted_root=root)
        _roots[key] = root
    return verifier


def _trusted_root(trusted_root: str | os.PathLike[str]) -> Any:
    from ebpm.digests import sha256

    trusted_root = Path(trusted_root)
    _verifier(trusted_root)
    key = (trusted_root, sha256(trusted_root.read_bytes()).hexdigest())
    return _roots[key]


def verify_bundle(bundle_json: bytes, artifact: bytes | None, *, identities: tuple[
        KeylessIdentity, ...], trusted_root: str | os.PathLike[str],
        where: str = "bundle") -> KeylessSigner:
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
    matched = policy.matched
    assert matched is not None
    names, issuer = policy.seen
    who = next(n for n in names if matched.matches([n], issuer))
    return KeylessSigner(who, tuple(names), issuer, payload_type, payload)


def verify_cosign_legacy(payload: bytes, signature: str, annotations: dict[str, str], *,
                         identities: tuple[KeylessIdentity, ...],
                         trusted_root: str | os.PathLike[str],
                         where: str) -> KeylessSigner:
    """Verify a legacy cosign keyless signature over the simple-signing `payload` offline: the
    Rekor signed entry timestamp, the certificate chain to a Fulcio CA at the log's time, the
    embedded SCT, the identity policy, the log entry's consistency and the signature."""
    import base64
    import json
    from datetime import UTC, datetime

    import rfc8785
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import KeyringPurpose
    from sigstore._utils import KeyID
    from sigstore.errors import Error as SigstoreError

    from ebpm.digests import sha256

    root = _trusted_root(trusted_root)
    rekor = annotations.get(REKOR_BUNDLE_ANNOTATION)
    if not rekor:
        raise SignatureError(f"{where}: a certificate but no {REKOR_BUNDLE_ANNOTATION} (a "
                             "transparency log entry is needed to verify offline)")
    try:
        cert = x509.load_pem_x509_certificate(annotations[CERTIFICATE_ANNOTATION].encode())
        chain = (x509.load_pem_x509_certificates(annotations[CHAIN_ANNOTATION].encode())
                 if annotations.get(CHAIN_ANNOTATION) else [])
        doc = json.loads(rekor)
        entry = doc["Payload"]
        set_signature = base64.b64decode(doc["SignedEntryTimestamp"])
        body_b64, integrated = str(entry["body"]), int(entry["integratedTime"])
        log_index, log_id = int(entry["logIndex"]), str(entry["logID"])
        body = json.loads(base64.b64decode(body_b64))
        raw_signature = base64.b64decode(signature)
    except (ValueError, KeyError, TypeError) as err:
        raise SignatureError(f"{where}: malformed keyless annotations: {err}") from err
    try:
        # the signed entry timestamp: Rekor promises this entry at this time
        canonical = rfc8785.dumps({"body": body_b64, "integratedTime": integrated,
                                   "logID": log_id, "logIndex": log_index})
        root.rekor_keyring(KeyringPurpose.VERIFY).verify(
            key_id=KeyID(bytes.fromhex(log_id)), signature=set_signature, data=canonical)
        # the chain to a Fulcio CA at that time (code signing, not client auth, as sigstore)
        when = datetime.fromtimestamp(integrated, tz=UTC)
        verifier = (
            PolicyBuilder().store(Store(root.get_fulcio_certs())).time(when)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca().may_be_present(
                    x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None),
                ee_policy=ExtensionPolicy.webpki_defaults_ee().may_be_present(
                    x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None))
            .build_client_verifier()
        )
        path = verifier.verify(cert, chain).chain[1:]
        verify_sct(cert, path, root.ct_keyring(KeyringPurpose.VERIFY))
    except (SigstoreError, VerificationError, ValueError) as err:
        raise SignatureError(f"{where}: keyless verification failed: {err}") from err
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise SignatureError(f"{where}: the certificate is not for code signing")
    policy = _Policy(identities)
    try:
        policy.verify(cert)
    except SigstoreError as err:
        raise SignatureError(f"{where}: keyless verification failed: {err}") from err
    # the log entry is about this signature, key and payload
    spec = body.get("spec") or {}
    try:
        logged_cert = x509.load_pem_x509_certificate(base64.b64decode(
            spec["signature"]["publicKey"]["content"]))
        consistent = (
            body.get("kind") == "hashedrekord"
            and spec["data"]["hash"]["value"] == sha256(payload).hexdigest()
            and base64.b64decode(spec["signature"]["content"]) == raw_signature
            and logged_cert.public_bytes(serialization.Encoding.DER)
            == cert.public_bytes(serialization.Encoding.DER)
        )
    except (KeyError, TypeError, ValueError):
        consistent = False
    if not consistent:
        raise SignatureError(f"{where}: the transparency log entry is about another "
                             "signature, key or payload")
    public = cert.public_key()
    try:
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        public.verify(raw_signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise SignatureError(f"{where}: the signature does not verify with the certificate's "
                             "key") from err
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise SignatureError(f"{where}: the certificate was not valid when the log saw the "
                             "signature")
    names, issuer = policy.seen
    assert policy.matched is not None
    who = next(n for n in names if policy.matched.matches([n], issuer))
    return KeylessSigner(who, tuple(names), issuer)
