"""Issue 13, item 9: `ebpm sign REF:TAG` signs the digest of the manifest it fetched and hashed,
not what a (lying) HEAD's Docker-Content-Digest claims, and warns that signing by tag is racy."""

from __future__ import annotations

import pytest

from ebpm.oci.model import MANIFEST_V1
from ebpm.oci.signature import signature_tag
from ebpm.trust import keys
from tests.cli import ebpm
from tests.hardening.conftest import tiny_artifact
from tests.hostile import Hostile, stream


def test_sign_by_tag_hashes_the_manifest_and_warns(hostile: Hostile,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    keys.generate("k")
    real = tiny_artifact().digest
    other = hostile.add(tiny_artifact("6.6.6"), "r", "6.6.6")
    size = len(tiny_artifact("6.6.6").manifest_bytes)
    hostile.on("HEAD", r"/v2/r/manifests/1\.0\.0", lambda h, m: stream(
        h, 200, [], {"Docker-Content-Digest": other, "Content-Type": MANIFEST_V1}, length=size))
    r = ebpm(capsys, "sign", "--key", "k", f"{hostile.host}/r:1.0.0")
    assert r.code == 0, r.err
    assert f"{hostile.host}/r:1.0.0@{real}: signed" in r.out
    assert ("warning: signing by tag is racy: the tag may change between reading and signing; "
            f"signed {real} (sign {hostile.host}/r@{real} to be sure)") in r.err
    assert ("r", signature_tag(real)) in hostile.manifests
    assert ("r", signature_tag(other)) not in hostile.manifests


def test_sign_by_digest_does_not_warn(hostile: Hostile,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    keys.generate("k")
    real = tiny_artifact().digest
    r = ebpm(capsys, "sign", "--key", "k", f"{hostile.host}/r@{real}")
    assert r.code == 0, r.err
    assert "racy" not in r.err
