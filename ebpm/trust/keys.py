"""Signing keys: generate, find, load and list ECDSA P-256 key pairs under config_dir()/keys/.

A key pair NAME is two files: `NAME.key`, the private key as PKCS#8 PEM (encrypted when a
password is given), mode 0600; and `NAME.pub`, the public key as SubjectPublicKeyInfo PEM (what
`cosign verify --key` reads). A key's id is `sha256:` + the SHA-256 of the public key's DER.
Key ids are computed without `cryptography`, so checking a cached verification stays cheap.
"""

from __future__ import annotations

import binascii  # base64.b64decode(validate=True) is a2b_base64(strict_mode=True)
import functools
import os
import re
from typing import TYPE_CHECKING

from ebpm.errors import SignatureError, UsageError
from ebpm.files import FILE_MODE, PRIVATE_MODE, atomic_write
from ebpm.record import record

if TYPE_CHECKING:
    from pathlib import Path  # (imported where used: a pull imports no pathlib, ebpm.config)

    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

__all__ = [
    "KeyInfo",
    "keys_dir",
    "key_id",
    "public_der",
    "generate",
    "list_keys",
    "find_public",
    "find_private",
    "load_public",
    "load_private",
    "DEFAULT_KEY",
]

DEFAULT_KEY = "default"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # compiled where a name is checked (not by a pull)
_BEGIN, _END = b"-----BEGIN PUBLIC KEY-----", b"-----END PUBLIC KEY-----"
# what a PEM body holds: base64 and ASCII whitespace (bytes.split()'s, a bytes pattern's \s)
_PEM_BODY = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n\r\x0b\x0c"


@record
class KeyInfo:
    """A key pair (or a lone public key) known to ebpm."""

    name: str
    key_id: str
    public_path: Path
    private_path: Path | None  # None for a public key only
    encrypted: bool = False


def keys_dir() -> Path:
    from pathlib import Path

    from ebpm import config

    return Path(config.config_dir(), "keys")


def public_der(pem: bytes, *, where: str = "public key") -> bytes:
    """The DER SubjectPublicKeyInfo inside a `PUBLIC KEY` PEM block (no cryptography needed)."""
    body = _pem_body(pem)
    if body is None:
        raise SignatureError(
            f"{where}: no '-----BEGIN PUBLIC KEY-----' block",
            hint="give a public key in SubjectPublicKeyInfo PEM (NAME.pub, cosign.pub)",
        )
    try:
        return binascii.a2b_base64(b"".join(body.split()), strict_mode=True)
    except (binascii.Error, ValueError) as err:
        raise SignatureError(f"{where}: PEM body is not valid base64") from err


def _pem_body(pem: bytes) -> bytes | None:
    """The body of the first `PUBLIC KEY` block: between a BEGIN line and the next END line,
    not empty, only base64 and whitespace (a block that is not is skipped, as the pattern
    `BEGIN\\s*([A-Za-z0-9+/=\\s]+?)\\s*END` searches; compiling it cost a pull ~0.2 ms)."""
    start = pem.find(_BEGIN)
    while start >= 0:
        end = pem.find(_END, start + len(_BEGIN))
        if end < 0:
            return None
        body = pem[start + len(_BEGIN):end]
        if body and not body.translate(None, _PEM_BODY):
            return body
        start = pem.find(_BEGIN, start + 1)
    return None


def key_id(der: bytes) -> str:
    """A key's id: sha256 of its public key DER."""
    from ebpm.digests import sha256_digest

    return sha256_digest(der)


def _check_name(name: str) -> str:
    if not re.fullmatch(_NAME, name):
        raise UsageError(
            f"invalid key name {name!r}",
            hint="use up to 64 of [A-Za-z0-9_.-], starting with a letter or digit",
        )
    return name


def generate(name: str = DEFAULT_KEY, *, password: str | None = None,
             directory: Path | None = None, force: bool = False) -> KeyInfo:
    """Create key pair NAME (ECDSA P-256); refuses to replace an existing one unless `force`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _check_name(name)
    directory = directory or keys_dir()
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise UsageError(
            f"key {name!r} already exists in {directory}",
            hint="choose another --name, or remove the old files first",
        )
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(private_path, private_pem, mode=PRIVATE_MODE)
    atomic_write(public_path, public_pem, mode=FILE_MODE)
    return KeyInfo(name, key_id(public_der(public_pem)), public_path, private_path,
                   encrypted=bool(password))


def list_keys(directory: Path | None = None) -> list[KeyInfo]:
    """The key pairs (and lone public keys) in the keys directory, by name."""
    directory = directory or keys_dir()
    if not directory.is_dir():
        return []
    out = []
    for public_path in sorted(directory.glob("*.pub")):
        name = public_path.name[: -len(".pub")]
        try:
            kid = key_id(public_der(public_path.read_bytes(), where=str(public_path)))
        except (OSError, SignatureError):
            continue
        private_path = directory / f"{name}.key"
        has_private = private_path.is_file()
        encrypted = has_private and b"ENCRYPTED" in private_path.read_bytes()[:64]
        out.append(KeyInfo(name, kid, public_path, private_path if has_private else None,
                           encrypted=encrypted))
    return out


def _find(name_or_path: str, suffix: str) -> Path:
    from pathlib import Path

    path = Path(name_or_path).expanduser()
    if os.sep in name_or_path or path.suffix in {".pem", ".pub", ".key"} or path.is_file():
        if path.is_dir():
            raise UsageError(f"key file {path} is a directory",
                             hint="give a key's name, or the path of its PEM file")
        if not path.is_file():
            raise UsageError(f"key file {path} does not exist")
        return path
    candidate = keys_dir() / f"{_check_name(name_or_path)}{suffix}"
    if not candidate.is_file():
        raise UsageError(
            f"no key named {name_or_path!r} ({candidate} does not exist)",
            hint=f"create it with `ebpm key generate --name {name_or_path}`, or give a path",
        )
    return candidate


def find_public(name_or_path: str) -> Path:
    """The public key file of key NAME (config_dir()/keys/NAME.pub), or a path as given."""
    return _find(name_or_path, ".pub")


def find_private(name_or_path: str) -> Path:
    """The private key file of key NAME (config_dir()/keys/NAME.key), or a path as given."""
    return _find(name_or_path, ".key")


def _is_public(path: Path) -> bool:
    """Whether the file holds a public key and no private one (its first few KiB: a public
    key is not secret, so it is read before the private key's mode check)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False  # the mode check and the read say why
    return _BEGIN in head and b"PRIVATE KEY-----" not in head


# SubjectPublicKeyInfo DER of an uncompressed P-256 key up to its 65-byte point:
# SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }
_P256_SPKI = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


@functools.lru_cache(maxsize=64)
def load_public(pem: bytes, *, where: str = "public key") -> EllipticCurvePublicKey:
    """Parse a P-256 public key from SubjectPublicKeyInfo PEM (a key object is immutable: each
    one is parsed once, not once per package an install checks against it)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    der = public_der(pem, where=where)
    if len(der) == len(_P256_SPKI) + 65 and der.startswith(_P256_SPKI):
        # the one shape a P-256 key has: its point straight into cryptography, without
        # importing its serialization package (ssh, ciphers, backends: ~45 modules a pull)
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                                der[len(_P256_SPKI):])
        except ValueError as err:
            raise SignatureError(f"{where}: not a valid public key: {err}") from err
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_der_public_key(der)
    except ValueError as err:
        raise SignatureError(f"{where}: not a valid public key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SignatureError(f"{where}: not an ECDSA P-256 public key")
    return key


def load_private(name_or_path: str, *, password: str | None = None) -> EllipticCurvePrivateKey:
    """Load key NAME's (or the file's) P-256 private key; `password` (default:
    $EBPM_KEY_PASSWORD) decrypts it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    given = "the password given (--password-stdin)"
    if password is None:
        password = os.environ.get("EBPM_KEY_PASSWORD") or None
        given = "EBPM_KEY_PASSWORD"
    path = find_private(name_or_path)
    if _is_public(path):
        pair = path.with_suffix(".key")
        raise UsageError(
            f"{path} is a public key: sign with the private key (NAME.key, or the key's name)",
            hint=f"--key {pair}" if pair.is_file() else
                 "--key NAME for a key of `ebpm key list`, or the private key's PEM file",
        )
    from ebpm.trust.modes import check_private_key

    check_private_key(path)
    pem = path.read_bytes()
    if b"SIGSTORE PRIVATE KEY" in pem:
        raise SignatureError(
            f"{path}: cosign's encrypted key format is not supported",
            hint="export a PKCS#8 PEM (`cosign import-key-pair` takes PEM the other way), "
                 "or generate one with `ebpm key generate`",
        )
    try:
        key = serialization.load_pem_private_key(
            pem, password=password.encode() if password else None
        )
    except TypeError as err:
        if "encrypted" in str(err).lower() and not password:
            raise SignatureError(
                f"{path}: the private key is encrypted",
                hint="give its password with EBPM_KEY_PASSWORD or --password-stdin",
            ) from err
        raise SignatureError(f"{path}: {err}") from err
    except ValueError as err:
        raise SignatureError(
            f"{path}: cannot load the private key (wrong password or not a PEM key)",
            hint=f"check {given}" if password else None,
        ) from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SignatureError(f"{path}: not an ECDSA P-256 private key",
                             hint="cosign-compatible signatures need ECDSA P-256 keys")
    return key
