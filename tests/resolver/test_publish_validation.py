"""Publishing validates the dependency table: what a consumer could not resolve is refused."""

from __future__ import annotations

from typing import Any

import pytest

from ebpm.deps.validate import check_publishable
from ebpm.errors import ManifestError
from ebpm.resolver.source import MemorySource

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
