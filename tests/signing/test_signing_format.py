"""cosign's legacy signature format: fixed vectors, openssl cross-checks, manifest merging."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from ebpm.errors import SignatureError
from ebpm.oci import signature as sig
from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE, Manifest, sha256_digest
from ebpm.trust.keys import key_id, load_public, public_der
from tests.signing.signing_helpers import openssl_key

REPO = "localhost:5000/tools/opensnoop"
DIGEST = "sha256:0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000"

# The payload cosign signs for REPO@DIGEST, byte for byte: compact JSON, keys in the order of
# cosign's Go structs (critical{identity,image,type}, optional), docker-reference without tag.
PAYLOAD = (
    b'{"critical":{"identity":{"docker-reference":"localhost:5000/tools/opensnoop"},'
    b'"image":{"docker-manifest-digest":"sha256:0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a0'
    b'90807060504030201000"},"type":"cosign container image signature"},"optional":{}}'
)
# A signature of PAYLOAD made once with `openssl dgst -sha256 -sign key.pem` (DER, base64) and
# the matching public key (SubjectPublicKeyInfo PEM, what `cosign verify --key` reads).
VECTOR_SIGNATURE = (
    "MEUCIFQrYOtNIdo+OdGM4Zyl1rTTzgjILEOWxQhSz1Swm92oAiEA1BklC5VUW2wS3iapx7+MxeRDkXa5P4ypwqMX+vgrPCM="
)
VECTOR_PUB = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEulzEpNTcCcyUSiPLOLDW84x0Mge4
GFotrodl7CoNcEpRj+sieqftkkGYLouu9bROUHofJOHKPXmYWnvK0sjGnA==
-----END PUBLIC KEY-----
"""
VECTOR_KEY_ID = "sha256:26258b7dfa1d55b9ba1a7e7ce3e5c1dec8f74b6ac311caede955cd9ee7763e56"


def test_payload_bytes_are_cosigns() -> None:
    assert sig.make_payload(REPO, DIGEST) == PAYLOAD
    doc = json.loads(PAYLOAD)
    assert doc["critical"]["type"] == "cosign container image signature"
    parsed = sig.parse_payload(PAYLOAD)
    assert (parsed.docker_reference, parsed.digest, parsed.optional) == (REPO, DIGEST, {})


def test_signature_tag() -> None:
    assert sig.signature_tag(DIGEST) == (
        "sha256-0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000.sig"
    )


def test_fixed_vector_verifies_and_key_id() -> None:
    public = load_public(VECTOR_PUB)
    assert sig.verify_payload(PAYLOAD, VECTOR_SIGNATURE, public)
    assert key_id(public_der(VECTOR_PUB)) == VECTOR_KEY_ID
    # one changed byte of the payload, or of the signature, and it no longer verifies
    assert not sig.verify_payload(PAYLOAD.replace(b"opensnoop", b"execsnoop"), VECTOR_SIGNATURE,
                                  public)
    der = bytearray(base64.b64decode(VECTOR_SIGNATURE))
    der[-1] ^= 1
    assert not sig.verify_payload(PAYLOAD, base64.b64encode(bytes(der)).decode(), public)
    assert not sig.verify_payload(PAYLOAD, VECTOR_SIGNATURE[:20], public)  # truncated
    assert not sig.verify_payload(PAYLOAD, "not base64!!", public)  # garbage


def test_openssl_signature_verifies_and_ours_verifies_in_openssl(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key_path, pub_path = openssl_key(tmp_path)
    payload_path = tmp_path / "payload.json"
    payload_path.write_bytes(PAYLOAD)
    # openssl signs, we verify
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key_path), "-out",
                    str(tmp_path / "o.sig"), str(payload_path)], check=True)
    ossl_sig = base64.b64encode((tmp_path / "o.sig").read_bytes()).decode()
    assert sig.verify_payload(PAYLOAD, ossl_sig, load_public(pub_path.read_bytes()))
    # we sign, openssl verifies
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    ours = sig.sign_payload(PAYLOAD, private)  # type: ignore[arg-type]
    (tmp_path / "e.sig").write_bytes(base64.b64decode(ours, validate=True))
    out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub_path), "-signature",
                          str(tmp_path / "e.sig"), str(payload_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "Verified OK" in out.stdout
    # and the key id is the sha256 of the DER that openssl writes
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(pub_path), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    assert key_id(public_der(pub_path.read_bytes())) == sha256_digest(der)


def test_manifest_shape_and_merging_keeps_every_signer() -> None:
    data, config, added = sig.add_signature(None, PAYLOAD, VECTOR_SIGNATURE)
    assert added
    doc = json.loads(data)
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert doc["config"]["digest"] == sha256_digest(config)
    (layer,) = doc["layers"]
    assert layer == {
        "mediaType": COSIGN_SIMPLESIGNING_TYPE,
        "digest": sha256_digest(PAYLOAD),
        "size": len(PAYLOAD),
        "annotations": {"dev.cosignproject.cosign/signature": VECTOR_SIGNATURE},
    }
    assert json.loads(config)["rootfs"] == {"type": "layers",
                                            "diff_ids": [sha256_digest(PAYLOAD)]}

    first = Manifest.from_bytes(data)
    data2, config2, added2 = sig.add_signature(first, PAYLOAD, "MEUCIQ" + "A" * 90)
    assert added2
    parsed = sig.parse_manifest(data2)
    assert [s.signature for s in parsed.signatures] == [VECTOR_SIGNATURE, "MEUCIQ" + "A" * 90]
    assert len(json.loads(config2)["rootfs"]["diff_ids"]) == 2
    # the same signature again changes nothing
    data3, _, added3 = sig.add_signature(parsed.manifest, PAYLOAD, VECTOR_SIGNATURE)
    assert not added3 and data3 == data2


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"garbage", "not valid JSON"),
        (b"[]", "no 'critical'"),
        (PAYLOAD.replace(b"cosign container image signature", b"other"), "type is"),
        (b'{"critical":{"type":"cosign container image signature"}}', "are required"),
        (PAYLOAD.replace(b'"optional":{}', b'"optional":3'), "'optional'"),
    ],
)
def test_bad_payloads_are_refused(payload: bytes, words: str) -> None:
    with pytest.raises(SignatureError, match=words):
        sig.parse_payload(payload)


def test_cosigns_null_optional_is_accepted() -> None:
    parsed = sig.parse_payload(PAYLOAD.replace(b'"optional":{}', b'"optional":null'))
    assert parsed.optional is None and parsed.digest == DIGEST


def test_bad_signature_manifests() -> None:
    with pytest.raises(SignatureError, match="not valid JSON"):
        sig.parse_manifest(b"{nope")
    with pytest.raises(SignatureError):
        sig.decode_signature("%%%")


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("localhost:5000/tools/x", "localhost:5000/tools/x"),
        ("ghcr.io/acme/x", "ghcr.io/acme/x"),
        ("docker.io/library/x", "index.docker.io/library/x"),
        ("docker.io/x", "index.docker.io/library/x"),
        ("registry-1.docker.io/acme/x", "index.docker.io/acme/x"),
    ],
)
def test_docker_reference_is_go_containerregistrys_name(name: str, want: str) -> None:
    assert sig.docker_reference(name) == want
