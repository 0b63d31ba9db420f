"""Publishing validates the dependency table: what a consumer could not resolve is refused."""

from __future__ import annotations

from typing import Any

import pytest

from ebpm.errors import ManifestError
from ebpm.resolver.source import MemorySource
from ebpm.resolver.validate import check_publishable

REG = "localhost:5000"
SOURCE = MemorySource({f"{REG}/lib": {"1.0.0": {}, "1.2.0": {}}})


@pytest.mark.parametrize(("deps", "words"), [
    ({"lib": "^^1"}, "dependencies.lib: version range '^^1'"),
    ({"raw": {"url": "https://example.org/x.bpf.o"}}, "dependencies.raw: a url dependency needs "
                                                       "sha256"),
    ({"near": {"path": "../near"}}, "dependencies.near: a path dependency (../near) cannot be "
                                    "published"),
])
def test_refused_without_network(deps: dict[str, Any], words: str) -> None:
    with pytest.raises(ManifestError) as info:
        check_publishable(deps, registry=REG, where="tool/ebpm.toml")
    assert words in info.value.message
    assert info.value.message.startswith("tool/ebpm.toml: dependencies.")
    assert info.value.hint


def test_refused_when_missing_from_its_registry() -> None:
    with pytest.raises(ManifestError) as info:
        check_publishable({"gone": "^1"}, registry=REG, where="tool", source=SOURCE)
    assert info.value.message == (
        "tool: dependencies.gone: localhost:5000/gone does not exist in its registry")
    with pytest.raises(ManifestError, match=r"no published version of localhost:5000/lib "
                                            r"matches \^2 \(available: 1.0.0, 1.2.0\)"):
        check_publishable({"lib": "^2"}, registry=REG, where="tool", source=SOURCE)


def test_accepted() -> None:
    deps = check_publishable({"lib": "^1.1"}, registry=REG, where="tool", source=SOURCE)
    assert [d.name for d in deps] == ["lib"]
    assert check_publishable(None, registry=REG, where="tool") == ()


@pytest.mark.registry
def test_build_push_publish_refuse(registry: Any, tmp_path: Any, capsys: Any,
                                   monkeypatch: Any) -> None:
    """The real CLI: build refuses a table that does not parse; push and publish refuse path
    dependencies and packages missing from the registry pushed to."""
    from ebpm.build.scaffold import init_package
    from tests.cli import ebpm

    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    pkg = tmp_path / "vtool"
    init_package("vtool", directory=pkg)
    toml = (pkg / "ebpm.toml").read_text()

    def deps(text: str) -> None:
        (pkg / "ebpm.toml").write_text(toml.replace("[dependencies]\n", f"[dependencies]\n{text}"))

    deps('lib = "^^1"\n')
    r = ebpm(capsys, "build", str(pkg))
    assert r.code == 1 and "dependencies.lib: version range '^^1'" in r.err
    assert not (pkg / ".ebpm" / "config.json").exists()
    deps('raw = { url = "https://example.org/x.bpf.o" }\n')
    r = ebpm(capsys, "build", str(pkg))
    assert r.code == 1 and "dependencies.raw: a url dependency needs sha256" in r.err

    deps('near = { path = "../near" }\n')
    assert ebpm(capsys, "build", str(pkg)).code == 0  # a local build may use path packages
    r = ebpm(capsys, "push", str(pkg), f"{registry.host}/vtool")
    assert r.code == 1
    assert "dependencies.near: a path dependency (../near) cannot be published" in r.err

    deps('vgone = "^1"\n')
    r = ebpm(capsys, "publish", str(pkg), f"{registry.host}/vtool")
    assert r.code == 1
    assert f"dependencies.vgone: {registry.host}/vgone does not exist in its registry" in r.err
    from ebpm.access import registry_for

    assert registry_for(registry.host).head_manifest("vtool", "0.1.0") is None  # not pushed
