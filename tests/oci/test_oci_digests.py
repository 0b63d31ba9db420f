"""ebpm's one SHA-256 (ebpm.digests; ebpm.oci.model names its sha256_digest too): hashlib's,
or cryptography's once a command chose it (a signed pull: no second OpenSSL); the same
digests either way, whole or streamed."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebpm import digests
from ebpm.oci import model


@pytest.mark.parametrize("chunks", [[], [b""], [b"abc"], [b"a" * 70000, b"b", b""],
                                    [bytes(range(256))] * 300])
def test_both_backends_give_hashlibs_digest(chunks: list[bytes]) -> None:
    from cryptography.hazmat.primitives import hashes

    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    ours = digests._Sha256(hashes)
    for chunk in chunks:
        ours.update(chunk)
    assert ours.hexdigest() == expected
    whole = digests.sha256(b"".join(chunks))
    assert whole.hexdigest() == expected
    assert model.sha256_digest(b"".join(chunks)) == f"sha256:{expected}"


@given(st.binary(max_size=5000))
def test_cryptographys_digest_is_hashlibs(data: bytes) -> None:
    from cryptography.hazmat.primitives import hashes

    ours = digests._Sha256(hashes)
    ours.update(data)
    assert ours.hexdigest() == hashlib.sha256(data).hexdigest()


_PROBE = """
import sys
from ebpm import digests
from ebpm.oci import model
if sys.argv[1] == "chosen":
    digests.hash_with_cryptography()
digest = model.sha256_digest(b"ebpm")
print(digest, "hashlib" in sys.modules, "cryptography" in sys.modules)
"""


@pytest.mark.parametrize("mode", ["default", "chosen"])
def test_the_backend_a_process_uses(mode: str) -> None:
    """By default hashlib (no cryptography is imported for a digest); once chosen,
    cryptography (and no hashlib at all)."""
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "sha256:" + hashlib.sha256(b"ebpm").hexdigest()
    assert out[1:] == (["True", "False"] if mode == "default" else ["False", "True"])
