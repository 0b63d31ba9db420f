"""Enforcing the trust policy: check a stored package's signatures and record the outcome.

`enforce()` is what pull, install and run call before a package is usable: it works from the
local store alone (offline), checks every signature against the trust policy, and records the
outcome with the policy's fingerprint, so a later run needs neither the network nor
`cryptography` until the policy or the signatures change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ebpm.errors import DigestMismatchError, ManifestError, SignatureError, StoreError
from ebpm.oci.reference import Reference
from ebpm.oci.signature import signature_tag
from ebpm.record import record

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from ebpm.oci.layout import Store
    from ebpm.trust.identity import IdentityRule
    from ebpm.trust.policy import Policy, Rule


__all__ = [
    "Signer", "Verification", "Refused", "enforce", "forget", "prepare", "partly_looked_up",
    "VERIFIED", "UNSIGNED_ALLOWED", "NOT_REQUIRED", "REFUSED",
]

VERIFIED = "verified"
UNSIGNED_ALLOWED = "unsigned-allowed"  # --allow-unsigned: accepted without a trusted signature
NOT_REQUIRED = "not-required"  # the policy's rule says `require = false`
REFUSED = "refused"  # no trusted signature where the policy requires one (`Refused` carries it)
_RECORD_VERSION = 2


@record
class Signer:
    """A signature that the policy accepted: which trusted key made it, over which payload."""

    key_id: str  # the key's id; for keyless signatures "keyless:" and the identity matched
    key_source: str  # the trusted public key's file (or "inline"); keyless: the OIDC issuer
    docker_reference: str
    payload_digest: str
    kind: str = "key"  # "key" or "keyless"


@record
class Verification:
    """The outcome of checking one package against the trust policy."""

    repository: str  # registry/repository
    digest: str  # the package manifest digest
    status: str  # VERIFIED, UNSIGNED_ALLOWED, NOT_REQUIRED or REFUSED
    signers: tuple[Signer, ...]
    rejected: tuple[str, ...]  # why the other signatures did not count
    policy: str  # fingerprint of the effective policy
    rule: str  # the deciding rule: scope (file:line)
    signature: str  # digest of the signature manifest in the store ("" if none)
    cached: bool  # taken from the store's verification record
    # the signatures were looked up in the legacy `.sig` form only (a pull stops there when that
    # one verifies the package): signers in OCI 1.1 referrers, if any, are not listed
    partial: bool = False
    refusal: str = ""  # REFUSED: why (the error's message)

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
            "partial": self.partial,
            "refusal": self.refusal,
        }


class Refused(SignatureError):
    """The policy refused a package (no trusted signature where one is required); carries the
    verdict, which `ebpm verify --json` prints as its result."""

    def __init__(self, message: str, *, hint: str | None = None,
                 verification: Verification) -> None:
        super().__init__(message, hint=hint)
        self.verification = verification



def _from_record(entry: dict[str, Any], repository: str, digest: str) -> Verification:
    return Verification(
        repository=repository, digest=digest, status=VERIFIED,
        signers=tuple(Signer(**s) for s in entry.get("signers", [])),
        rejected=tuple(str(r) for r in entry.get("rejected", [])),
        policy=str(entry.get("policy", "")), rule=str(entry.get("rule", "")),
        signature=str(entry.get("signature", "")), cached=True,
        partial=bool(entry.get("partial", False)),
    )


def _record(store: Store, repository: str, digest: str) -> dict[str, Any] | None:
    """The store's verification record of `repository`'s package `digest`, if of this
    version."""
    record = store.verification(repository, digest)
    return record if record is not None and record.get("v") == _RECORD_VERSION else None


def _reader(store: Store, known: Mapping[str, bytes] | None) -> Callable[..., bytes]:
    """read(digest, size=None): the blob's bytes from `known` (what the caller holds, verified
    against these digests: a pull's manifest and signature blobs, just stored), else from the
    store, verified on the way."""
    def read(digest: str, size: int | None = None) -> bytes:
        data = known.get(digest) if known else None
        if data is not None and (size is None or len(data) == size):
            return data
        return store.read_blob(digest, size=size)

    return read


def _check_content(store: Store, digest: str, checked: Collection[str] = (),
                   read: Callable[..., bytes] | None = None) -> None:
    """The package manifest and every blob it names are in the store, intact (blobs in
    `checked` were hashed by the caller a moment ago, e.g. as a pull streamed them in)."""
    from ebpm.oci.model import Manifest

    data = (read or store.read_blob)(digest)
    manifest = Manifest.from_bytes(data, where=f"store manifest {digest}")
    for desc in (manifest.config, *manifest.layers):
        if desc.digest not in checked:
            store.check_blob(desc.digest, size=desc.size)  # hashed in chunks: flat memory


def _signature_manifests(store: Store, repository: str, digest: str,
                         read: Callable[..., bytes]) -> tuple[list[tuple[str, str]], str]:
    """The signature manifests the store holds for `digest`: the legacy `sha256-<hex>.sig` one
    and the referrers kept at `sha256-<hex>`, as (label, manifest digest); and a key naming
    exactly this set (for the verification record)."""
    from ebpm.oci.referrers import is_signature_referrer, parse_index, referrers_tag

    found: list[tuple[str, str]] = []
    keys: list[str] = []
    legacy = store.resolve(f"{repository}:{signature_tag(digest)}")
    if legacy is not None:
        found.append((signature_tag(digest), legacy.digest))
        keys.append(legacy.digest)
    index = store.resolve(f"{repository}:{referrers_tag(digest)}")
    if index is not None:
        keys.append(index.digest)
        try:
            entries = parse_index(read(index.digest, size=index.size))
        except (ManifestError, StoreError, DigestMismatchError):
            entries = []
            found.append(("referrers", index.digest))  # reported as malformed below
        for desc in entries:
            if is_signature_referrer(desc):
                found.append((f"referrer {desc.digest[:19]}", desc.digest))
    return found, ",".join(keys)


def _check_signatures(read: Callable[..., bytes], repository: str, digest: str,
                      manifests: list[tuple[str, str]], rule: Rule,
                      identity: IdentityRule) -> tuple[list[Signer], list[str]]:
    from ebpm.limits import limits
    from ebpm.oci import referrers
    from ebpm.oci import signature as sig

    signers: list[Signer] = []
    rejected: list[str] = []
    n = 0
    for source, sig_digest in manifests:
        try:
            data = read(sig_digest)
            parsed = sig.parse_manifest(data, where=f"signature manifest {sig_digest}")
        except (SignatureError, StoreError, DigestMismatchError) as err:
            rejected.append(f"{source}: {err.message}")
            continue
        cap = limits().signature_layers
        if len(parsed.manifest.layers) > cap:
            rejected.append(f"{source}: {len(parsed.manifest.layers)} layers, more than the "
                            f"{cap} cap (EBPM_MAX_SIGNATURE_LAYERS)")
            continue
        bundles = [d for d in parsed.manifest.layers if referrers.is_bundle_type(d.media_type)]
        if not parsed.signatures and not bundles:
            rejected.append(f"{source}: holds no simple-signing layer or Sigstore bundle")
        for layer in parsed.signatures:
            n += 1
            _check_layer(read, repository, digest, layer, rule, identity, f"signature {n}",
                         signers, rejected)
        for desc in bundles:
            n += 1
            _check_bundle(read, repository, digest, desc, rule, identity, f"signature {n}",
                          signers, rejected)
    return signers, rejected


def _check_layer(read: Callable[..., bytes], repository: str, digest: str, layer: Any, rule: Rule,
                 identity: IdentityRule, label: str, signers: list[Signer],
                 rejected: list[str]) -> None:
    """One simple-signing layer: payload, identity, then a trusted key or keyless identity."""
    from ebpm.oci import signature as sig
    from ebpm.trust.identity import identity_error
    from ebpm.trust.keys import load_public

    desc = layer.descriptor
    if desc.size > sig.MAX_PAYLOAD_SIZE:
        rejected.append(f"{label}: payload of {desc.size} bytes is too large")
        return
    try:
        payload_bytes = read(desc.digest, size=desc.size)
        payload = sig.parse_payload(payload_bytes, where=f"{label}: payload")
        if payload.digest != digest:
            raise SignatureError(f"{label}: signs another manifest ({payload.digest})")
        wrong = identity_error(payload.docker_reference, repository, identity)
        if wrong:
            raise SignatureError(f"{label}: {wrong}")
        if not layer.signature:
            raise SignatureError(f"{label}: no {sig.SIGNATURE_ANNOTATION} annotation")
        sig.decode_signature(layer.signature, where=f"{label}")
    except (SignatureError, StoreError, DigestMismatchError) as err:
        rejected.append(err.message)
        return
    match = next((k for k in rule.keys
                  if sig.verify_payload(payload_bytes, layer.signature,
                                        load_public(k.pem, where=k.source))), None)
    if match is not None:
        signers.append(Signer(match.key_id, match.source, payload.docker_reference,
                              desc.digest))
        return
    from ebpm.trust import keyless  # only when no trusted key signed it

    cert = desc.annotations.get(keyless.CERTIFICATE_ANNOTATION)
    if cert and rule.keyless and rule.legacy_keyless and rule.trusted_root is not None:
        try:
            who = keyless.verify_cosign_legacy(
                payload_bytes, layer.signature, desc.annotations, identities=rule.keyless,
                trusted_root=rule.trusted_root, where=label)
        except SignatureError as err:
            rejected.append(err.message)
            return
        signers.append(Signer(f"keyless:{who.identity}", who.issuer, payload.docker_reference,
                              desc.digest, kind="keyless"))
        return
    if cert:
        rejected.append(f"{label}: a keyless signature in cosign's legacy form (certificate "
                        f"{_cert_subject(cert)}): it carries a signed entry timestamp but no "
                        "inclusion proof; the rule accepts it only with legacy_keyless = true "
                        "and a keyless identity")
        return
    rejected.append(f"{label}: not made by a key trusted for {repository} "
                    "(an untrusted key, or a damaged signature)")


def _cert_subject(pem: str) -> str:
    from ebpm.trust import keyless

    try:
        from cryptography import x509

        names, issuer = keyless.certificate_identity(x509.load_pem_x509_certificate(
            pem.encode()))
    except ValueError:
        return "unreadable"
    return f"{', '.join(names) or '?'}, issuer {issuer or '?'}"


def _check_bundle(read: Callable[..., bytes], repository: str, digest: str, desc: Any,
                  rule: Rule,
                  identity: IdentityRule, label: str, signers: list[Signer],
                  rejected: list[str]) -> None:
    """One Sigstore bundle referrer: a message signature over the package manifest's bytes,
    or a DSSE envelope whose in-toto statement (or simple-signing payload) names the digest."""
    import json

    from ebpm.oci import signature as sig
    from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE
    from ebpm.trust import keyless
    from ebpm.trust.identity import identity_error

    if not rule.keyless or rule.trusted_root is None:
        rejected.append(f"{label}: a Sigstore bundle (keyless), but the policy (rule "
                        f"{rule.scope}) names no keyless identity")
        return
    try:
        bundle = read(desc.digest, size=desc.size)
        manifest = read(digest)
        who = keyless.verify_bundle(bundle, manifest, identities=rule.keyless,
                                    trusted_root=rule.trusted_root, where=label)
        claimed = ""
        if who.payload_type == COSIGN_SIMPLESIGNING_TYPE:
            payload = sig.parse_payload(who.payload, where=f"{label}: payload")
            if payload.digest != digest:
                raise SignatureError(f"{label}: signs another manifest ({payload.digest})")
            claimed = payload.docker_reference
        elif who.payload_type == keyless.IN_TOTO:
            statement = json.loads(who.payload)
            subjects = statement.get("subject") or []
            hexpart = digest.partition(":")[2]
            named = [s for s in subjects if isinstance(s, dict)
                     and (s.get("digest") or {}).get("sha256") == hexpart]
            if not named:
                raise SignatureError(f"{label}: the statement's subjects do not include "
                                     f"{digest}")
            claimed = str(named[0].get("name") or "")
        elif who.payload_type:
            raise SignatureError(f"{label}: DSSE payload type {who.payload_type!r} is not a "
                                 "signature ebpm understands")
        if claimed and "/" in claimed:
            wrong = identity_error(claimed, repository, identity)
            if wrong:
                raise SignatureError(f"{label}: {wrong}")
    except (SignatureError, StoreError, DigestMismatchError) as err:
        rejected.append(err.message)
        return
    except ValueError as err:
        rejected.append(f"{label}: malformed statement: {err}")
        return
    signers.append(Signer(f"keyless:{who.identity}", who.issuer, claimed or repository,
                          desc.digest, kind="keyless"))


def enforce(store: Store, reference: Reference, manifest_digest: str, *,
            allow_unsigned: bool = False, fresh: bool = False,
            check_content: bool = False, checked: Collection[str] = (),
            policy: Policy | None = None, partial: bool | None = None,
            known: Mapping[str, bytes] | None = None) -> Verification:
    """Check the package `manifest_digest` of `reference`'s repository against the trust policy,
    from the store only. Raises SignatureError when the policy requires a trusted signature and
    there is none (absent, untrusted, malformed, of another digest or repository), and
    PolicyError when the policy is broken. A verified outcome is recorded with the policy's
    fingerprint; a record made under another policy or signature manifest is checked again
    (`fresh` always checks again). `check_content` re-hashes the package's blobs even when the
    record is used (`ebpm verify`: no signature cryptography, but no unchecked bytes either).
    `checked`: blob digests the caller has just hashed (a pull, as they streamed in): not hashed
    again (each layer is hashed once per pull). `policy`: the trust policy already loaded (an
    install checks every package against one reading of it). `partial`: whether the store's
    signatures come from a lookup of the legacy form only (a pull's, `discovery.fetch`); None
    (a check from the store alone): as the record said. `known`: blobs the caller holds,
    verified against their digests and just stored (a pull's manifest and signatures' blobs):
    read from there instead of from the store and hashed again."""
    if policy is None:
        from ebpm.trust.policy import load_policy

        policy = load_policy()
    fingerprint = policy.fingerprint
    repository = reference.name
    rule = policy.rule_for(repository)
    rule_text = f"{rule.scope} ({rule.where})"
    read = _reader(store, known)
    with store.batch():  # the index parsed once for the lookups below, a record written once
        manifests, sig_digest = _signature_manifests(store, repository, manifest_digest, read)
        entry = _record(store, repository, manifest_digest)
        was_partial = entry is not None and bool(entry.get("partial"))
        # a record from the legacy signature alone does not answer for every signature
        complete_now = partial is False and was_partial
        partial = was_partial if partial is None else partial
        if (not fresh and not complete_now and entry is not None
                and entry.get("policy") == fingerprint and entry.get("signature") == sig_digest
                and store.has_blob(manifest_digest)):
            try:
                if check_content:
                    _check_content(store, manifest_digest, checked)
                return _from_record(entry, repository, manifest_digest)
            except TypeError:
                pass  # a damaged record: verify again

        if entry is not None:
            store.record_verification(repository, manifest_digest, None)
        _check_content(store, manifest_digest, checked, read)
        signers: list[Signer] = []
        rejected: list[str] = []
        if manifests:
            try:
                signers, rejected = _check_signatures(read, repository, manifest_digest,
                                                      manifests, rule,
                                                      policy.identity_rule(rule))
            except (SignatureError, StoreError, DigestMismatchError, ManifestError) as err:
                rejected = [f"signature manifest: {err.message}"]

        # the same signer over the same payload in both forms (tag and referrer) counts once
        signers = list({(s.key_id, s.docker_reference, s.payload_digest): s
                        for s in signers}.values())
        common = dict(repository=repository, digest=manifest_digest, policy=fingerprint,
                      rule=rule_text, signature=sig_digest, cached=False, partial=partial)
        if signers:
            verification = Verification(status=VERIFIED, signers=tuple(signers),
                                        rejected=tuple(rejected),
                                        **common)  # type: ignore[arg-type]
            store.record_verification(repository, manifest_digest, {
                "v": _RECORD_VERSION, "policy": fingerprint, "rule": rule_text,
                "signature": sig_digest, "signers": [s.__dict__ for s in signers],
                "rejected": list(rejected), **({"partial": True} if partial else {}),
            })
            return verification
    if rule.require and not allow_unsigned:
        raise _refusal(reference, manifest_digest, rule, rule_text, bool(manifests), rejected,
                       common)
    status = UNSIGNED_ALLOWED if rule.require else NOT_REQUIRED
    return Verification(status=status, signers=(), rejected=tuple(rejected),
                        **common)  # type: ignore[arg-type]


def prepare(store: Store, reference: Reference, manifest_digest: str, policy: Policy) -> None:
    """Import what checking the package's signatures against `policy` will take
    (cryptography's EC and hash primitives, for a rule that trusts keys), unless its
    verification under this policy is recorded (then `enforce` needs no cryptography;
    `manifest_digest` "": not known yet, nothing can be recorded for it). A pull calls it while
    the package and its signatures are still coming, so that the check, once they are stored,
    only computes."""
    rule = policy.rule_for(reference.name)
    if not rule.keys:
        return
    entry = _record(store, reference.name, manifest_digest) if manifest_digest else None
    if entry is not None and entry.get("policy") == policy.fingerprint:
        return
    from ebpm.oci.signature import prepare_verify

    prepare_verify()


def _refusal(reference: Reference, digest: str, rule: Rule, rule_text: str, has_signature: bool,
             rejected: list[str], common: dict[str, Any]) -> Refused:
    error = _refusal_error(reference, digest, rule, rule_text, has_signature, rejected)
    verdict = Verification(status=REFUSED, signers=(), rejected=tuple(rejected),
                           refusal=error.message, **common)
    return Refused(error.message, hint=error.hint, verification=verdict)


def _refusal_error(reference: Reference, digest: str, rule: Rule, rule_text: str,
                   has_signature: bool, rejected: list[str]) -> SignatureError:
    what = f"{reference.name}@{digest}"
    if not rule.keys and not rule.keyless:
        return SignatureError(
            f"{what}: no key is trusted for {reference.name} (policy: {rule_text})",
            hint=f"trust the publisher's public key: `ebpm trust add '{reference.name}' --key "
                 "FILE.pub`; or pass --allow-unsigned (not recommended)",
        )
    if not has_signature:
        return SignatureError(
            f"{what}: not signed (no {signature_tag(digest)} and no signature referrer in "
            f"{reference.name}); "
            f"the policy requires a signature (rule {rule_text})",
            hint="ask the publisher to sign it (`ebpm sign`), or pass --allow-unsigned "
                 "(not recommended)",
        )
    return SignatureError(
        f"{what}: no trusted signature: " + "; ".join(rejected or ["none"]),
        hint=f"the policy (rule {rule_text}) trusts "
             + ", ".join([k.key_id[:19] for k in rule.keys] + [str(k) for k in rule.keyless])
             + "; nothing was marked verified",
    )



def partly_looked_up(store: Store, repository: str, digest: str) -> bool:
    """Whether `repository`'s verified package `digest` was checked from its legacy signature
    alone (the pull did not look for OCI 1.1 referrers: that signature verified it)."""
    entry = _record(store, repository, digest)
    return entry is not None and bool(entry.get("partial"))


def forget(store: Store, digest: str, repository: str) -> None:
    """Drop the verification record that `repository` has for the package `digest`."""
    if store.verification(repository, digest) is not None:
        store.record_verification(repository, digest, None)
