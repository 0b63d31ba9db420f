"""ebpm.lock: canonical bytes, round trip, validation errors, staleness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebpm.errors import LockfileError
from ebpm.package import ProjectManifest
from ebpm.record import replace
from ebpm.resolver.dependency import parse_dependencies, spec_hash
from ebpm.resolver.lockfile import LockEntry, Lockfile
from ebpm.resolver.resolve import resolve
from ebpm.resolver.source import MemorySource

REG = "localhost:5000"
D1, D2, D3, D4 = ("sha256:" + c * 64 for c in "1234")
SHA = "cd" * 32
RAW = {
    "a": "^1",
    "raw": {"url": "https://example.org/x.bpf.o", "sha256": SHA},
}
GRAPH = {
    f"{REG}/a": {"1.0.0": {"b": "^2"}, "1.1.0+meta": {"b": "^2"}},
    f"{REG}/b": {"2.0.0": {}, "2.2.0": {}},
}


def make_lock() -> Lockfile:
    deps = parse_dependencies(RAW, default_registry=REG)
    res = resolve(deps, MemorySource(GRAPH))
    lock = Lockfile.from_resolution(res, spec_hash=spec_hash(deps))
    a = lock.get(f"{REG}/a")
    assert a is not None
    return lock.with_entry(
        replace(a, manifest_digest=D1, config_digest=D2, layers=(D3, D4), key_id="k1",
                signature_digest=D4)
    )


def manifest(tmp_path: Path, deps: str) -> ProjectManifest:
    (tmp_path / "ebpm.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n{deps}'
    )
    return ProjectManifest.load(tmp_path)


def test_round_trip_and_canonical_bytes(tmp_path: Path) -> None:
    lock = make_lock()
    data = lock.dumps()
    assert data.endswith(b"}\n")
    raw = json.loads(data)
    assert [p["package"] for p in raw["packages"]] == [
        f"{REG}/a", f"{REG}/b", "url:https://example.org/x.bpf.o"
    ]
    assert raw["packages"][0]["tag"] == "1.1.0_meta"
    assert raw["packages"][0]["dependencies"] == {"b": f"{REG}/b"}
    assert raw["dependencies"] == {"a": f"{REG}/a", "raw": "url:https://example.org/x.bpf.o"}
    again = Lockfile.loads(data)
    assert again == lock
    assert again.dumps() == data
    # Key order in the input does not matter: the output is canonical.
    shuffled = json.dumps(dict(reversed(list(raw.items()))))
    assert Lockfile.loads(shuffled).dumps() == data
    path = tmp_path / "ebpm.lock"
    lock.dump(path)
    assert path.read_bytes() == data
    assert Lockfile.load(path) == lock
    assert [p.name for p in tmp_path.iterdir()] == ["ebpm.lock"]
    assert lock.missing_digests() == [f"{REG}/b"]
    assert lock.locked_versions() == {f"{REG}/a": "1.1.0+meta", f"{REG}/b": "2.2.0"}
    entry = lock.get(f"{REG}/a")
    assert entry is not None and entry.reference == f"{REG}/a@{D1}"


def _mutate(path: list[str | int], value: object) -> bytes:
    raw = json.loads(make_lock().dumps())
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (["lock_version"], 9, "lock_version 9 is not supported"),
        (["lock_version"], "1", 'lock_version must be a number, not "1" (this ebpm reads 1)'),
        (["lock_version"], True, "lock_version must be a number, not true"),
        (["lock_version"], None, "lock_version is missing"),
        (["spec_hash"], "md5:1", "spec_hash 'md5:1' is invalid"),
        (["extra"], 1, "unknown field(s) extra"),
        (["packages", 0, "manifest_digest"], "sha256:xyz", "manifest_digest 'sha256:xyz'"),
        (["packages", 0, "tag"], "1.1.0", "does not match version"),
        (["packages", 0, "version"], "latest", "is not semver"),
        (["packages", 0, "kind"], "svn", "unknown kind 'svn'"),
        (["packages", 0, "colour"], "red", "unknown field(s) colour"),
        (["packages", 0, "layers"], "sha256:1", "layers must be a list"),
        (["packages", 0, "dependencies"], {"b": "localhost:5000/zz"}, "which has no entry"),
        (["packages", 2, "sha256"], "short", "url entries need url and sha256"),
        (["dependencies"], {"q": "localhost:5000/q"}, "dependency q (localhost:5000/q)"),
        (["packages", 1], None, "which has no entry"),
    ],
)
def test_validation(path: list[str | int], value: object, words: str) -> None:
    with pytest.raises(LockfileError) as info:
        Lockfile.loads(_mutate(path, value))
    assert words in info.value.message
    assert info.value.hint


def test_not_json_and_missing(tmp_path: Path) -> None:
    with pytest.raises(LockfileError, match="not valid JSON"):
        Lockfile.loads(b"{")
    with pytest.raises(LockfileError, match="no lockfile"):
        Lockfile.load(tmp_path / "ebpm.lock")
    (tmp_path / "ebpm.lock").write_text("[]")
    with pytest.raises(LockfileError, match=f"{tmp_path}/ebpm.lock: expected a JSON object"):
        Lockfile.load(tmp_path / "ebpm.lock")


def test_is_stale(tmp_path: Path) -> None:
    lock = make_lock()
    url = f'raw = {{ url = "https://example.org/x.bpf.o", sha256 = "{SHA}" }}\n'
    same = manifest(tmp_path, 'a = "^1"\n' + url)
    assert not lock.is_stale(same, default_registry=REG)
    assert lock.is_stale(manifest(tmp_path, 'a = "^1.1"\n' + url), default_registry=REG)
    assert lock.is_stale(manifest(tmp_path, 'a = "^1"\n'), default_registry=REG)
    assert lock.is_stale(same, default_registry="ghcr.io")
    assert lock.is_stale(manifest(tmp_path, 'a = "^^"\n'), default_registry=REG)


def test_entries_for_every_kind() -> None:
    e = LockEntry(package="path:../x", kind="path", path="../x", version="0.1.0")
    e.check("x")
    assert e.to_dict() == {
        "package": "path:../x", "kind": "path", "path": "../x", "version": "0.1.0",
        "dependencies": {},
    }
    assert e.registry == "" and e.repository == ""
