"""Dependency declarations of ebpm.toml: the four spellings and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ebpm.errors import ManifestError
from ebpm.package import ProjectManifest
from ebpm.resolver.dependency import (
    PathDependency,
    RegistryDependency,
    UrlDependency,
    parse_dependencies,
    spec_hash,
)

SHA = "ab" * 32
REG = "localhost:5000"


def test_four_spellings() -> None:
    deps = parse_dependencies(
        {
            "short": "^1.2",
            "full": {"ref": "ghcr.io/org/tool", "version": "~1.0"},
            "raw": {"url": "https://example.org/x.bpf.o", "sha256": SHA},
            "local": {"path": "../x"},
            "any": {"version": "*"},
        },
        default_registry=REG,
    )
    by_name = {d.name: d for d in deps}
    assert [d.name for d in deps] == sorted(by_name)
    short = by_name["short"]
    assert isinstance(short, RegistryDependency)
    assert (short.package, short.registry, short.repository) == (f"{REG}/short", REG, "short")
    assert str(short.range) == "^1.2"
    full = by_name["full"]
    assert isinstance(full, RegistryDependency) and full.package == "ghcr.io/org/tool"
    assert by_name["raw"] == UrlDependency("raw", "https://example.org/x.bpf.o", SHA)
    assert by_name["local"] == PathDependency("local", "../x")
    assert by_name["any"].package == f"{REG}/any"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"x": 3}, "expected a version range string or a table"),
        ({"x": "^^1"}, "dependencies.x: version range '^^1'"),
        ({"x": {"url": "https://e/x.bpf.o"}}, "a url dependency needs sha256"),
        ({"x": {"url": "https://e/x.bpf.o", "sha256": "xyz"}}, "sha256 must be 64"),
        ({"x": {"url": "ftp://e/x", "sha256": SHA}}, "url must be an http(s) URL"),
        ({"x": {"ref": "tools/x"}}, "ref 'tools/x' is not registry/repository"),
        ({"x": {"ref": "ghcr.io/a/b:1.0"}}, "is not registry/repository"),
        ({"x": {"ref": "127.0.0.1:99999/lib"}}, "bad registry '127.0.0.1:99999'"),
        ({"x": {"ref": "127.0.0.1:0/lib"}}, "bad registry '127.0.0.1:0'"),
        ({"x": {"ref": "bad_host:5000/lib"}}, "bad registry 'bad_host:5000'"),
        ({"x": {"ref": "ghcr.io/a/b", "path": "../b"}}, "unexpected key(s) ref"),
        ({"x": {"tag": "1.0"}}, "say where the package is"),
        ({"x": {"foo": "bar"}}, "`version`, `ref`, `url`, `path` or `git` (unexpected key(s) "
                                "foo)"),
        ({"x": {"path": ""}}, "path must be a non-empty string"),
        ({"Bad Name": "^1"}, "is not a valid package name"),
        ({"a": {"ref": f"{REG}/b"}, "b": "^1"}, "a and b both name localhost:5000/b"),
    ],
)
def test_bad_declarations(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_dependencies(raw, default_registry=REG)
    assert words in info.value.message


def test_spec_hash_ignores_spelling_but_not_meaning() -> None:
    a = parse_dependencies({"x": "^1.2"}, default_registry=REG)
    b = parse_dependencies({"x": {"ref": f"{REG}/x", "version": ">=1.2.0, <2.0.0-0"}},
                           default_registry=REG)
    c = parse_dependencies({"x": "^1.3"}, default_registry=REG)
    d = parse_dependencies({"x": "^1.2"}, default_registry="ghcr.io")
    assert spec_hash(a) == spec_hash(b)
    assert len({spec_hash(a), spec_hash(c), spec_hash(d)}) == 3


def test_manifest_dependencies_parse(tmp_path: Path) -> None:
    (tmp_path / "ebpm.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
        'opensnoop = "^1"\nlib = { ref = "ghcr.io/org/lib", version = "~2.1" }\n'
    )
    manifest = ProjectManifest.load(tmp_path)
    deps = parse_dependencies(manifest.dependencies, default_registry=REG)
    assert [d.package for d in deps] == ["ghcr.io/org/lib", f"{REG}/opensnoop"]
