"""Enforcing the trust policy: check a stored package's signatures and record the outcome.

`enforce()` is what pull, install and run call before a package is usable: it works from the
local store alone (offline), checks every signature against the trust policy, and records the
outcome with the policy's fingerprint, so a later run needs neither the network nor
`cryptography` until the policy or the signatures change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ebpm.errors import DigestMismatchError, ManifestError, SignatureError, StoreError
from ebpm.oci.reference import Reference
from ebpm.oci.signature import signature_tag

if TYPE_CHECKING:
    from ebpm.oci.layout import Store
    from ebpm.trust.policy import Rule


__all__ = [
    "Signer", "Verification", "enforce", "forget", "VERIFIED", "UNSIGNED_ALLOWED", "NOT_REQUIRED",
]

VERIFIED = "verified"
UNSIGNED_ALLOWED = "unsigned-allowed"  # --allow-unsigned: accepted without a trusted signature
NOT_REQUIRED = "not-required"  # the policy's rule says `require = false`
_RECORD_VERSION = 1


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
    from ebpm.oci import signature as sig
    from ebpm.trust.keys import load_public

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
    from ebpm.trust.policy import load_policy

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



def forget(store: Store, digest: str, repository: str) -> None:
    """Drop the verification record that `repository` has for the package `digest`."""
    records = _records(store, digest)
    if records.pop(repository, None) is not None:
        _save_records(store, digest, records)
