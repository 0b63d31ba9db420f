"""ebpm's one SHA-256 (`sha256`, `sha256_digest`): hashlib's, or cryptography's once a command
chose it (`hash_with_cryptography`: a command that checks signatures imports cryptography
anyway, and hashlib would load a second OpenSSL). A contract below every room: the store and
the registry client (through ebpm.oci.model), the trust checks, and the lock's spec_hash
(ebpm.resolver) all hash with it."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Hasher(Protocol):
        def update(self, data: bytes, /) -> None: ...
        def hexdigest(self) -> str: ...

__all__ = ["hash_with_cryptography", "sha256", "sha256_digest"]


_CRYPTOGRAPHY: list[bool] = []  # digests by cryptography's OpenSSL from now on (see below)


def hash_with_cryptography() -> None:
    """From now on, digests are computed by cryptography (its SHA-256, OpenSSL's): for a
    command that checks a signature, which imports cryptography anyway. `hashlib` is then not
    imported at all: it loads a second OpenSSL, the system's libcrypto, ~2.5 ms of a cold
    pull (docs/architecture.md, "Where the pull targets stand")."""
    if not _CRYPTOGRAPHY:
        _CRYPTOGRAPHY.append(True)


class _Sha256:
    """cryptography's SHA-256 as `hashlib.sha256()`'s object (`hexdigest` once, at the end)."""

    __slots__ = ("_hash",)

    def __init__(self, hashes: Any) -> None:
        self._hash = hashes.Hash(hashes.SHA256())

    def update(self, data: bytes, /) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return str(self._hash.finalize().hex())


def sha256(data: bytes = b"") -> Hasher:
    """A SHA-256 hasher (`update`, `hexdigest`), the one ebpm computes digests with: by
    cryptography once a command chose it (`hash_with_cryptography`) or imported it, else by
    hashlib (`ebpm run` of a stored package imports no cryptography). The same digests."""
    hasher: Hasher
    if _CRYPTOGRAPHY or "cryptography.hazmat.primitives.hashes" in sys.modules:
        from cryptography.hazmat.primitives import hashes

        hasher = _Sha256(hashes)
    else:
        import hashlib

        hasher = hashlib.sha256()
    if data:
        hasher.update(data)
    return hasher


def sha256_digest(data: bytes) -> str:
    return "sha256:" + sha256(data).hexdigest()
