"""Private dependencies and version equivalence against a real registry, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ebpm.access import registry_for
from ebpm.oci.artifact import Layer, pack
from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
from ebpm.package import PackageConfig
from ebpm.resolver.lockfile import Lockfile
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.resolver.test_resolver_install import project, publish

pytestmark = pytest.mark.registry


@pytest.fixture
def env(registry: Registryd, monkeypatch: pytest.MonkeyPatch) -> Registryd:
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    return registry


def _publish_same(registry: Registryd, name: str, versions: list[str], body: bytes,
                  deps: dict[str, Any] | None = None) -> None:
    """One content under several versions: same object, same config apart from `version`."""
    client = registry_for(registry.host)
    for version in versions:
        config = PackageConfig(name=name, version=version, dependencies=deps or {},
                               license="GPL-2.0")
        art = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, f"{name}.bpf.o", body)],
                   annotations={"org.opencontainers.image.version": version})
        for blob in art.blobs:
            client.push_blob(name, blob.descriptor.digest, blob.data)
        client.put_manifest(name, version, art.manifest_bytes, MANIFEST_V1)


def test_private_majors_coexist(env: Registryd, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    publish(env, {
        "pv-a": {"1.0.0": {"pv-x": {"version": "^1", "private": True}}},
        "pv-b": {"1.0.0": {"pv-x": {"version": "^2", "private": True}}},
        "pv-c": {"1.0.0": {"pv-x": "^2"}},
        "pv-x": {"1.0.0": {}, "1.5.0": {}, "2.0.0": {}, "2.2.0": {}},
    })
    app = project(tmp_path / "app", {"pv-a": "^1", "pv-b": "^1", "pv-c": "^1"})
    monkeypatch.chdir(app)
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 0, r.err
    lock = Lockfile.load(app / "ebpm.lock")
    h = env.host
    assert [(e.key, e.version) for e in lock.packages] == [
        (f"{h}/pv-a", "1.0.0"), (f"{h}/pv-a > {h}/pv-x", "1.5.0"),
        (f"{h}/pv-b", "1.0.0"), (f"{h}/pv-b > {h}/pv-x", "2.2.0"),
        (f"{h}/pv-c", "1.0.0"), (f"{h}/pv-x", "2.2.0"),
    ]
    raw = json.loads((app / "ebpm.lock").read_text())
    private = [p for p in raw["packages"] if "scope" in p]
    assert [(p["package"], p["scope"]) for p in private] == [
        (f"{h}/pv-x", f"{h}/pv-a"), (f"{h}/pv-x", f"{h}/pv-b")]
    r = ebpm(capsys, "tree")
    assert r.out.splitlines() == [
        "app 0.1.0",
        "├── pv-a 1.0.0",
        "│   └── pv-x 1.5.0 (private)",
        "├── pv-b 1.0.0",
        "│   └── pv-x 2.2.0 (private)",
        "└── pv-c 1.0.0",
        "    └── pv-x 2.2.0",
    ]
    r = ebpm(capsys, "--offline", "install", "--frozen", "--allow-unsigned")
    assert r.code == 0, r.err
    assert "installed 5 packages" in r.out  # pv-b's private copy is pv-x 2.2.0: one fetch
    publish(env, {"pv-x": {"1.6.0": {}, "3.0.0": {}}})
    r = ebpm(capsys, "outdated", "--json")
    assert r.code == 3
    assert json.loads(r.out) == [  # each private copy measured by its owner's range
        {"package": f"{h}/pv-a > {h}/pv-x", "current": "1.5.0", "wanted": "1.6.0",
         "latest": "3.0.0"},
        {"package": f"{h}/pv-b > {h}/pv-x", "current": "2.2.0", "wanted": "2.2.0",
         "latest": "3.0.0"},
        {"package": f"{h}/pv-x", "current": "2.2.0", "wanted": "2.2.0", "latest": "3.0.0"},
    ]


def test_equivalent_versions_are_one_package(env: Registryd, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"\x7fELF the same object"
    _publish_same(env, "eq-x", ["1.0.0", "2.0.0"], body)
    _publish_same(env, "eq-y", ["1.0.0"], body + b"!")
    _publish_same(env, "eq-y", ["2.0.0"], body + b"?")  # different content: a real conflict
    publish(env, {"eq-a": {"1.0.0": {"eq-x": "^1"}}, "eq-b": {"1.0.0": {"eq-x": "^2"}},
                  "eq-c": {"1.0.0": {"eq-y": "^1"}}, "eq-d": {"1.0.0": {"eq-y": "^2"}}})
    monkeypatch.chdir(project(tmp_path / "ok", {"eq-a": "^1", "eq-b": "^1"}))
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out.startswith(
        "note: eq-x 2.0.0 stands for 1.0.0: identical content apart from the version "
        "(sha256:")
    assert "so it meets eq-a@1.0.0's ^1\n" in r.out
    lock = Lockfile.load(tmp_path / "ok" / "ebpm.lock")
    assert lock.get(f"{env.host}/eq-x").version == "2.0.0"  # type: ignore[union-attr]

    monkeypatch.chdir(project(tmp_path / "no", {"eq-c": "^1", "eq-d": "^1"}))
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 1
    assert "error: conflicting requirements for eq-y" in r.err
