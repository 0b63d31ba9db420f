"""`ebpm save --locked -o deps.tar`: exactly what ebpm.lock pins, with signatures, for an air gap:
loaded into an empty store, `ebpm install --frozen --offline` then works with no registry."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.cli import ebpm
from tests.registryd import Registryd
from tests.resolver.test_resolver_install import project, publish

pytestmark = pytest.mark.registry


def test_save_locked_then_load_and_install_offline(
        registry: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpm.oci.reference import parse
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign

    h = registry.host
    monkeypatch.setenv("EBPM_REGISTRY", h)
    digests = publish(registry, {"sv-a": {"1.0.0": {"sv-b": "^1"}},
                                 "sv-b": {"1.0.0": {}, "1.1.0": {}, "2.0.0": {}}})
    key = keys.generate("ci")
    trust.add_trust(f"{h}/sv-*", key.public_path)
    for name, version in (("sv-a", "1.0.0"), ("sv-b", "1.0.0"), ("sv-b", "1.1.0"),
                          ("sv-b", "2.0.0")):
        sign(parse(f"{h}/{name}:{version}"), digests[f"{name}@{version}"], str(key.private_path))
    app = project(tmp_path / "app", {"sv-a": "^1"})
    monkeypatch.chdir(app)
    assert ebpm(capsys, "install").code == 0

    r = ebpm(capsys, "save", "--locked", "-o", str(tmp_path / "deps.tar"))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"saved {h}/sv-a:1.0.0", f"saved {h}/sv-b:1.1.0",
                                  f"wrote {tmp_path / 'deps.tar'}"]
    with tarfile.open(tmp_path / "deps.tar") as tar:
        index = tar.extractfile("index.json").read().decode()  # type: ignore[union-attr]
    assert index.count(".sig") == 2  # each package with its signature, nothing else
    assert "2.0.0" not in index and digests["sv-b@2.0.0"] not in index

    # the air-gapped side: an empty store, and --offline (no network call at all)
    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "airgap"))
    assert ebpm(capsys, "load", str(tmp_path / "deps.tar")).code == 0
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 0, r.err
    assert "installed 2 packages: 0 fetched, 2 from the store" in r.out

    r = ebpm(capsys, "save", "sv-a", "--locked", "-o", str(tmp_path / "x.tar"))
    assert r.code == 2 and "not both" in r.err
