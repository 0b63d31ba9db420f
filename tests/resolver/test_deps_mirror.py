"""A graph spanning two registries, one unreachable while a configured mirror holds its content:
lock and install go through the mirror, verified by digest and signature, so a mirror that
changes content is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.access import registry_for
from ebpm.oci.model import Manifest
from ebpm.oci.signature import signature_tag
from tests.cli import ebpm
from tests.registryd import Registryd, free_port, start_registry
from tests.resolver.test_resolver_install import artifact, project, publish

pytestmark = pytest.mark.registry


@pytest.fixture
def three() -> Iterator[tuple[Registryd, Registryd, Registryd]]:
    """The second registry, a faithful mirror of it, and a mirror that changes content."""
    regs = (start_registry(), start_registry(), start_registry())
    yield regs
    for reg in regs:
        reg.stop()


def _copy(src: str, dst: str, repository: str, tags: list[str]) -> None:
    a, b = registry_for(src), registry_for(dst)
    for tag in tags:
        data, media_type, _ = a.get_manifest(repository, tag)
        manifest = Manifest.from_bytes(data, where=tag)
        for d in (manifest.config, *manifest.layers):
            b.push_blob(repository, d.digest, a.get_blob(repository, d.digest))
        b.put_manifest(repository, tag, data, media_type)


def test_two_registries_one_unreachable_mirror_serves_but_cannot_tamper(
        registry: Registryd, three: tuple[Registryd, Registryd, Registryd], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpm.oci.reference import parse
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign

    second, mirror, evil = three
    a, b = registry.host, second.host
    monkeypatch.setenv("EBPM_REGISTRY", a)
    key = keys.generate("pub")
    trust.add_trust(f"{a}/mi-*", key.public_path)
    trust.add_trust(f"{b}/mi-*", key.public_path)
    far = publish(second, {"mi-b": {"1.0.0": {}}})
    near = publish(registry, {"mi-a": {"1.0.0": {"mi-b": {"ref": f"{b}/mi-b",
                                                          "version": "^1"}}}})
    sign(parse(f"{b}/mi-b:1.0.0"), far["mi-b@1.0.0"], str(key.private_path))
    sign(parse(f"{a}/mi-a:1.0.0"), near["mi-a@1.0.0"], str(key.private_path))
    sig = signature_tag(far["mi-b@1.0.0"])
    _copy(b, mirror.host, "mi-b", ["1.0.0", sig])
    # the evil mirror: other content under the tag, beside the genuine signature
    bad = artifact("mi-b", "1.0.0", {})
    bad_client = registry_for(evil.host)
    for blob in bad.blobs:
        bad_client.push_blob("mi-b", blob.descriptor.digest, blob.data)
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1

    changed = pack(bad.config.data, [Layer(BPF_OBJECT_TYPE, "mi-b.bpf.o", b"\x7fELF evil")],
                   annotations={"org.opencontainers.image.version": "1.0.0"})
    for blob in changed.blobs:
        bad_client.push_blob("mi-b", blob.descriptor.digest, blob.data)
    bad_client.put_manifest("mi-b", "1.0.0", changed.manifest_bytes, MANIFEST_V1)
    _copy(b, evil.host, "mi-b", [sig])

    second.stop()  # the second registry is gone from here on
    app = project(tmp_path / "app", {"mi-a": "^1"})
    monkeypatch.chdir(app)
    r = ebpm(capsys, "lock")
    assert r.code == 1 and f"registry {b} unreachable" in r.err  # and no mirror configured

    monkeypatch.setenv("EBPM_MIRRORS", f"{b}={mirror.host}")
    r = ebpm(capsys, "lock")
    assert r.code == 0, r.err
    lock = (app / "ebpm.lock").read_text()
    assert far["mi-b@1.0.0"] in lock and f'"package": "{b}/mi-b"' in lock
    r = ebpm(capsys, "tree")
    short = key.key_id[:19]  # sha256: and 12 hex digits, as everywhere else
    assert r.out.splitlines()[1:] == [f"└── mi-a 1.0.0 signed by {short}",
                                      f"    └── mi-b 1.0.0 ({b}/mi-b) signed by {short}"]
    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "fresh"))
    r = ebpm(capsys, "install", "--frozen")
    assert r.code == 0 and "2 fetched" in r.out, r.err

    # the tampering mirror: resolving the tag meets content no trusted key signed
    monkeypatch.setenv("EBPM_MIRRORS", f"{b}={evil.host}")
    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "fresh2"))
    (app / "ebpm.lock").unlink()
    r = ebpm(capsys, "lock")
    assert r.code == 1
    assert f"error: {b}/mi-b@{changed.digest}: not signed" in r.err, r.err
    # and the lock pins a digest the tampering mirror does not have
    (tmp_path / "app2").mkdir()
    (tmp_path / "app2" / "ebpm.lock").write_text(lock)
    r = ebpm(capsys, "install", "--frozen", "-C", str(tmp_path / "app2"))
    # the error names what the lock asked of the registry, and what each mirror answered
    want = f"{b}/mi-b@{far['mi-b@1.0.0']}"
    assert r.code == 1 and r.err.splitlines() == [
        f"error: {want}: {b} unreachable, and not on its mirror ({evil.host} 404 "
        "MANIFEST_UNKNOWN)",
        f"hint: the mirror has not synced it: copy it there from {b}, or retry when {b} is "
        "reachable"], r.err
    # several mirrors: an unreachable one and one without it are both named; a mirror that
    # lacks it passes to the next, which serves
    gone = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("EBPM_MIRRORS", f"{b}={gone},{evil.host}")
    r = ebpm(capsys, "install", "--frozen", "-C", str(tmp_path / "app2"))
    assert r.code == 1 and r.err.startswith(
        f"error: {want}: {b} unreachable, and not on its mirrors ({gone} unreachable; "
        f"{evil.host} 404 MANIFEST_UNKNOWN)\n"), r.err
    monkeypatch.setenv("EBPM_MIRRORS", f"{b}={evil.host},{mirror.host}")
    r = ebpm(capsys, "install", "--frozen", "-C", str(tmp_path / "app2"))
    assert r.code == 0, r.err
