"""A private Sigstore for tests: a Fulcio-like CA, a CT log and a Rekor log, made with
`cryptography`, issuing real bundles that the `sigstore` package's verifier accepts against a
`trusted_root.json` naming them. (Keyless signing needs Fulcio and Rekor, which are online
services; this stands in for them the way a test CA stands in for a web PKI.)

Certificates carry an embedded precertificate SCT (RFC 6962) over the TBS without it; log
entries carry a signed entry timestamp, a one-leaf inclusion proof and a signed checkpoint.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"


def _der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _octet_string(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        return b"\x04" + bytes([n]) + data
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(size)]) + size + data


def _canonical(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Log:
    key: ec.EllipticCurvePrivateKey

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(_der(self.key.public_key())).digest()

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def root_entry(self, url: str) -> dict[str, object]:
        return {
            "baseUrl": url, "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": _b64(_der(self.key.public_key())),
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": "2020-01-01T00:00:00Z"}},
            "logId": {"keyId": _b64(self.log_id)},
        }


class PrivateSigstore:
    """A CA, a CT log and a Rekor log; `trusted_root` is the JSON that pins them."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ebpm-test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "ebpm-test-fulcio")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(ski, critical=False)
            .sign(self.ca_key, hashes.SHA384())
        )
        self.ct = Log(ec.generate_private_key(ec.SECP256R1()))
        self.rekor = Log(ec.generate_private_key(ec.SECP256R1()))

    def trusted_root(self) -> bytes:
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [self.rekor.root_entry("https://rekor.ebpm.test")],
            "certificateAuthorities": [{
                "subject": {"organization": "ebpm-test", "commonName": "ebpm-test-fulcio"},
                "uri": "https://fulcio.ebpm.test",
                "certChain": {"certificates": [
                    {"rawBytes": _b64(self.ca.public_bytes(serialization.Encoding.DER))}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [self.ct.root_entry("https://ctfe.ebpm.test")],
            "timestampAuthorities": [],
        }, indent=1).encode()

    def write_root(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.trusted_root())
        return path

    # -- certificates -----------------------------------------------------------------------

    def issue(self, identity: str, issuer: str) -> tuple[ec.EllipticCurvePrivateKey,
                                                         x509.Certificate]:
        """A short-lived code-signing certificate for `identity` (an email or a URI) from
        `issuer`, with an embedded SCT, as Fulcio issues them."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = (x509.RFC822Name(identity) if "@" in identity
                                 and "://" not in identity
                                 else x509.UniformResourceIdentifier(identity))
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(self.ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ISSUER_OID, issuer.encode()),
                           critical=False)
        )
        precert = builder.sign(self.ca_key, hashes.SHA384())
        tbs = precert.tbs_certificate_bytes
        timestamp = int(now.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(_der(self.ca_key.public_key())).digest()
        signed = struct.pack("!BBQH", 0, 0, timestamp, 1) + issuer_key_hash + struct.pack(
            "!I", len(tbs))[1:] + tbs + struct.pack("!H", 0)
        signature = self.ct.sign(signed)
        sct = (struct.pack("!B", 0) + self.ct.log_id + struct.pack("!QH", timestamp, 0)
               + struct.pack("!BBH", 4, 3, len(signature)) + signature)
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        cert = builder.add_extension(
            x509.UnrecognizedExtension(SCT_OID, _octet_string(sct_list)), critical=False,
        ).sign(self.ca_key, hashes.SHA384())
        assert cert.tbs_precertificate_bytes == tbs
        return key, cert

    # -- log entries ------------------------------------------------------------------------

    def _tlog_entry(self, body: dict[str, object]) -> dict[str, object]:
        canonical = _canonical(body)
        integrated = int(dt.datetime.now(dt.UTC).timestamp())
        index = 0  # every entry is the only leaf of its own one-leaf tree
        promise = self.rekor.sign(_canonical({
            "body": _b64(canonical), "integratedTime": integrated,
            "logID": self.rekor.log_id.hex(), "logIndex": index}))
        root = hashlib.sha256(b"\x00" + canonical).digest()  # a one-leaf tree
        origin = "rekor.ebpm.test - 1"
        note = f"{origin}\n1\n{_b64(root)}\n"
        checkpoint = (note + "\n\u2014 " + origin.split()[0] + " "
                      + _b64(self.rekor.log_id[:4] + self.rekor.sign(note.encode())) + "\n")
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.rekor.log_id)},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(promise)},
            "inclusionProof": {"logIndex": str(index), "rootHash": _b64(root),
                               "treeSize": "1", "hashes": [],
                               "checkpoint": {"envelope": checkpoint}},
            "canonicalizedBody": _b64(canonical),
        }

    def _material(self, cert: x509.Certificate, entry: dict[str, object],
                  media_type: str) -> dict[str, object]:
        der = cert.public_bytes(serialization.Encoding.DER)
        if media_type == BUNDLE_V03:
            return {"certificate": {"rawBytes": _b64(der)}, "tlogEntries": [entry]}
        return {"x509CertificateChain": {"certificates": [{"rawBytes": _b64(der)}]},
                "tlogEntries": [entry]}

    def message_bundle(self, artifact: bytes, identity: str, issuer: str, *,
                       media_type: str = BUNDLE_V03) -> bytes:
        """A bundle whose message signature signs `artifact` (hashedrekord 0.0.1 entry)."""
        key, cert = self.issue(identity, issuer)
        signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
        digest = hashlib.sha256(artifact).digest()
        pem = cert.public_bytes(serialization.Encoding.PEM)
        entry = self._tlog_entry({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                     "signature": {"content": _b64(signature),
                                   "publicKey": {"content": _b64(pem)}}}})
        return json.dumps({
            "mediaType": media_type,
            "verificationMaterial": self._material(cert, entry, media_type),
            "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                   "digest": _b64(digest)},
                                 "signature": _b64(signature)},
        }).encode()

    def dsse_bundle(self, payload_type: str, payload: bytes, identity: str, issuer: str, *,
                    media_type: str = BUNDLE_V03) -> bytes:
        """A bundle with a DSSE envelope of `payload` (dsse 0.0.1 entry)."""
        key, cert = self.issue(identity, issuer)
        pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(),
                                       len(payload), payload)
        signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        envelope = {"payload": _b64(payload), "payloadType": payload_type,
                    "signatures": [{"sig": _b64(signature), "keyid": ""}]}
        pem = cert.public_bytes(serialization.Encoding.PEM)
        entry = self._tlog_entry({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(
                    _canonical(envelope)).hexdigest()},
                "payloadHash": {"algorithm": "sha256",
                                "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [{"signature": _b64(signature), "verifier": _b64(pem)}],
            }})
        return json.dumps({
            "mediaType": media_type,
            "verificationMaterial": self._material(cert, entry, media_type),
            "dsseEnvelope": envelope,
        }).encode()


    def cosign_legacy(self, payload: bytes, identity: str, issuer: str
                      ) -> tuple[str, dict[str, str]]:
        """What `cosign sign` (keyless, legacy form) puts on a `.sig` layer: the signature and
        the certificate and Rekor bundle (signed entry timestamp, no inclusion proof)."""
        key, cert = self.issue(identity, issuer)
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM)
        body = _canonical({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256",
                                       "value": hashlib.sha256(payload).hexdigest()}},
                     "signature": {"content": _b64(signature),
                                   "publicKey": {"content": _b64(pem)}}}})
        entry = {"body": _b64(body),
                 "integratedTime": int(dt.datetime.now(dt.UTC).timestamp()),
                 "logID": self.rekor.log_id.hex(), "logIndex": 7}
        rekor = {"SignedEntryTimestamp": _b64(self.rekor.sign(_canonical(entry))),
                 "Payload": entry}
        return _b64(signature), {
            "dev.sigstore.cosign/certificate": pem.decode(),
            "dev.sigstore.cosign/chain": self.ca.public_bytes(
                serialization.Encoding.PEM).decode(),
            "dev.sigstore.cosign/bundle": json.dumps(rekor),
        }


def in_toto_statement(name: str, digest: str) -> bytes:
    """cosign's statement for a signed image: the subject is the manifest digest."""
    return json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.partition(":")[2]}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }).encode()
