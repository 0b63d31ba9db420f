"""The key/trust CLI, and the air gap: `ebpm save` writes deterministic OCI-layout tarballs with
their signatures; `ebpm load` verifies before anything is named in the store."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from ebpm.access import registry_for
from ebpm.oci.layout import Store
from ebpm.oci.model import MANIFEST_V1
from ebpm.oci.reference import parse
from ebpm.trust import keys
from ebpm.trust import policy as trust
from ebpm.trust.sign import sign
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.signing.signing_helpers import make_artifact


def test_key_and_trust_commands(capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "key", "generate", "--trust", "localhost:5000/**")
    assert r.code == 0, r.err
    info = keys.list_keys()[0]
    assert f"key default: {info.key_id}" in r.out and "trusted for localhost:5000/**" in r.out
    assert info.private_path is not None
    assert stat.S_IMODE(info.private_path.stat().st_mode) == 0o600
    r = ebpm(capsys, "key", "generate")
    assert r.code == 2 and "already exists" in r.err

    r = ebpm(capsys, "key", "list", "--json")
    assert [k["key_id"] for k in json.loads(r.out)] == [info.key_id]

    r = ebpm(capsys, "trust", "add", "ghcr.io/acme/*", "--key", "default", "--optional")
    assert r.code == 0 and "signature optional" in r.out, r.err
    r = ebpm(capsys, "trust", "list", "--json")
    doc = json.loads(r.out)
    assert [(x["scope"], x["require"]) for x in doc["rules"]] == [
        ("localhost:5000/**", True), ("ghcr.io/acme/*", False)]
    assert doc["fingerprint"] == trust.load_policy().fingerprint
    r = ebpm(capsys, "trust", "rm", "ghcr.io/acme/*")
    assert r.code == 0 and "removed" in r.out
    r = ebpm(capsys, "trust", "rm", "ghcr.io/acme/*")
    assert r.code == 2 and "no rule" in r.err
    r = ebpm(capsys, "trust", "add", "x/**", "--key", "nobody")
    assert r.code == 2 and "no key named 'nobody'" in r.err


def test_encrypted_key_through_the_cli(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    r = ebpm(capsys, "key", "generate", "--name", "ci", "--password-stdin")
    assert r.code == 0 and "(encrypted)" in r.out, r.err
    assert keys.load_private("ci", password="pw").curve.name == "secp256r1"


@pytest.fixture
def published(registry: Registryd) -> tuple[str, str, str]:
    """Two packages in the registry and the store, the first signed by trusted key 'good'."""
    good = keys.generate("good")
    trust.add_trust("127.0.0.1:*/**", good.public_path)
    client = registry_for(registry.host)
    out = []
    for n in (1, 2):
        artifact = make_artifact(f"{n}.0.0", body=f"\x7fELF airgap {n} {os.getpid()}".encode())
        repo = f"air/demo{n}"
        for blob in artifact.blobs:
            client.push_blob(repo, blob.descriptor.digest, blob.data)
        client.put_manifest(repo, f"{n}.0.0", artifact.manifest_bytes, MANIFEST_V1)
        ref = parse(f"{registry.host}/{repo}:{n}.0.0")
        if n == 1:
            sign(ref, artifact.digest, "good", registry=client)
        out.append(str(ref))
    from ebpm.transfer.pull import pull

    pull(out[0])
    pull(out[1], allow_unsigned=True)
    return out[0], out[1], registry.host


def _fresh_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "airgapped-home"
    monkeypatch.setenv("EBPM_HOME", str(home))
    monkeypatch.setenv("EBPM_OFFLINE", "1")
    return home


def test_save_load_roundtrip_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     published: tuple[str, str, str]) -> None:
    signed, _, _ = published
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    r = ebpm(capsys, "save", signed, "-o", str(a))
    assert r.code == 0 and f"saved {signed}" in r.out, r.err
    ebpm(capsys, "save", signed, "-o", str(b))
    assert a.read_bytes() == b.read_bytes()  # deterministic
    with tarfile.open(a) as tar:
        names = tar.getnames()
        assert names[:2] == ["blobs", "blobs/sha256"] and names[-2:] == ["index.json",
                                                                         "oci-layout"]
        assert {m.mtime for m in tar.getmembers()} == {0}
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    refs = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert refs[0] == signed and refs[1].endswith(".sig")
    # skopeo (an independent OCI client) reads the archive
    out = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{a}:{signed}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["artifactType"] == "application/vnd.ebpm.package.v1"

    home = _fresh_store(tmp_path, monkeypatch)
    r = ebpm(capsys, "load", str(a))
    assert r.code == 0 and f"loaded {signed}" in r.out and "verified" in r.out, r.err
    r = ebpm(capsys, "verify", signed)  # offline, from the new store
    assert r.code == 0 and ": verified" in r.out, r.err
    assert Store(home).resolve(signed) is not None


def test_load_refuses_unsigned_and_tampered_archives(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        published: tuple[str, str, str]) -> None:
    signed, unsigned, _ = published
    both = tmp_path / "both.tar"
    r = ebpm(capsys, "save", signed, unsigned, "-o", str(both))
    assert r.code == 1 and "not signed" in r.err  # save checks the policy too
    r = ebpm(capsys, "save", "--allow-unsigned", signed, unsigned, "-o", str(both))
    assert r.code == 0, r.err
    single = tmp_path / "single.tar"
    ebpm(capsys, "save", signed, "-o", str(single))

    home = _fresh_store(tmp_path, monkeypatch)
    r = ebpm(capsys, "load", str(both))  # one unsigned package: nothing is loaded
    assert r.code == 1 and "not signed" in r.err
    assert Store(home).entries() == []
    assert not list((home / "blobs" / "sha256").iterdir())
    assert not (home / "ebpm" / "verified").exists() or not list(
        (home / "ebpm" / "verified").iterdir())

    # a tampered layer inside the archive
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(single) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore
            if data is not None and b"airgap" in data:
                data = data.replace(b"airgap", b"AIRGAP")
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    r = ebpm(capsys, "load", str(tampered))
    assert r.code == 1 and "got digest" in r.err and "nothing was loaded" in r.err
    assert Store(home).entries() == []

    # an archive with a path outside the layout
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    r = ebpm(capsys, "load", str(evil))
    assert r.code == 1 and "unexpected member" in r.err


def test_save_without_refs_or_locked_says_what_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ebpm save -o x.tar` was told "name packages (REFS) or pass --locked, not both"."""
    r = ebpm(capsys, "save", "-o", str(tmp_path / "x.tar"))
    assert r.code == 2 and r.err.splitlines()[0] == (
        "error: save: nothing to save: name packages (REFS) or pass --locked")
    assert "not both" not in r.err and not (tmp_path / "x.tar").exists()
