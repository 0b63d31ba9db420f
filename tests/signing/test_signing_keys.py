"""Key pairs: generation, file modes and formats, passwords, loading foreign keys, listing."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ebpm.errors import SignatureError, UsageError
from ebpm.oci.model import sha256_digest
from ebpm.trust import keys
from tests.signing.signing_helpers import openssl_key


def test_generate_writes_pem_files_with_modes_and_id() -> None:
    info = keys.generate()
    assert info.private_path is not None
    assert stat.S_IMODE(info.private_path.stat().st_mode) == 0o600
    pub = info.public_path.read_bytes()
    assert pub.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert info.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(info.public_path), "-outform",
                          "DER"], check=True, capture_output=True).stdout
    assert info.key_id == sha256_digest(der)
    # the private key is one openssl reads and matches the public key
    out = subprocess.run(["openssl", "pkey", "-in", str(info.private_path), "-pubout"],
                         check=True, capture_output=True).stdout
    assert out == pub
    with pytest.raises(UsageError, match="already exists"):
        keys.generate()
    assert [k.name for k in keys.list_keys()] == ["default"]


def test_password_protected_key(monkeypatch: pytest.MonkeyPatch) -> None:
    info = keys.generate("ci", password="s3cret")
    assert info.encrypted
    assert info.private_path is not None
    assert b"ENCRYPTED PRIVATE KEY" in info.private_path.read_bytes()
    with pytest.raises(SignatureError, match="encrypted"):
        keys.load_private("ci")
    with pytest.raises(SignatureError, match="wrong password"):
        keys.load_private("ci", password="nope")
    assert keys.load_private("ci", password="s3cret").curve.name == "secp256r1"
    monkeypatch.setenv("EBPM_KEY_PASSWORD", "s3cret")
    assert keys.load_private("ci").curve.name == "secp256r1"
    assert keys.list_keys()[0].encrypted


def test_openssl_keys_load_by_path_and_rsa_is_refused(tmp_path: Path) -> None:
    key_path, pub_path = openssl_key(tmp_path)
    assert keys.load_private(str(key_path)).curve.name == "secp256r1"
    assert keys.find_public(str(pub_path)) == pub_path
    rsa = tmp_path / "rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", str(rsa)], check=True, capture_output=True)
    with pytest.raises(SignatureError, match="P-256"):
        keys.load_private(str(rsa))


def test_a_public_key_or_a_directory_given_to_sign_with_says_so(tmp_path: Path) -> None:
    """A .pub (mode 0644) was refused as a private key others may read, "consider the key
    compromised"; a 0600 copy as "wrong password or not a PEM key"; a directory "does not
    exist"."""
    info = keys.generate("ci")
    with pytest.raises(UsageError, match=r"ci.pub is a public key: sign with the private key "
                                         r"\(NAME.key, or the key's name\)") as err:
        keys.load_private(str(info.public_path))
    assert err.value.hint == f"--key {info.private_path}"
    copy = tmp_path / "copy.pem"
    copy.write_bytes(info.public_path.read_bytes())
    copy.chmod(0o600)
    with pytest.raises(UsageError, match="copy.pem is a public key") as err:
        keys.load_private(str(copy))
    assert err.value.hint and "ebpm key list" in err.value.hint
    with pytest.raises(UsageError, match=f"key file {tmp_path} is a directory"):
        keys.load_private(str(tmp_path))


def test_unknown_names_and_bad_pem() -> None:
    with pytest.raises(UsageError, match="no key named 'nobody'"):
        keys.find_private("nobody")
    with pytest.raises(UsageError, match="invalid key name"):
        keys.generate("../evil")
    with pytest.raises(SignatureError, match="BEGIN PUBLIC KEY"):
        keys.public_der(b"hello")


_PEM_PATTERN = (rb"-----BEGIN PUBLIC KEY-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*"
                rb"-----END PUBLIC KEY-----")
_PEM_PIECES = [b"-----BEGIN PUBLIC KEY-----", b"-----END PUBLIC KEY-----", b"-----BEGIN ",
               b"MFkwEwYHKoZIzj0CAQ", b"==", b"+/", b"\n", b" \t\r\x0b\x0c", b"-", b"!", b"\x00",
               b"\xff", b"\x1c", b"\xa0", b"a", b"Z9"]


@given(st.lists(st.sampled_from(_PEM_PIECES), max_size=12))
@example([_PEM_PIECES[0], b"!", _PEM_PIECES[0], b"a", _PEM_PIECES[1]])  # the second block
@example([_PEM_PIECES[0], _PEM_PIECES[1], _PEM_PIECES[0], b"\n", _PEM_PIECES[1]])
@settings(max_examples=600, deadline=None)
def test_pem_body_is_the_patterns(pieces: list[bytes]) -> None:
    """The public key's PEM body is found without a compiled pattern (a pull's key read) exactly
    as the pattern's search finds it: the first BEGIN..END block of base64 and whitespace."""
    import re

    text = b"".join(pieces)
    match = re.search(_PEM_PATTERN, text)
    body = keys._pem_body(text)
    if match is None:
        assert body is None
    else:
        assert body is not None and b"".join(body.split()) == b"".join(
            match.group("body").split())
