"""Git and private dependencies in the pure parts: parsing, lock entries, the tree."""

from __future__ import annotations

from typing import Any

import pytest

from ebpm.errors import LockfileError, ManifestError
from ebpm.resolver.dependency import (
    GitDependency,
    RegistryDependency,
    parse_dependencies,
    parse_dependency,
    spec_hash,
)
from ebpm.resolver.lockfile import Lockfile
from ebpm.resolver.resolve import resolve
from ebpm.resolver.source import MemorySource
from ebpm.resolver.tree import tree_lines

REG = "localhost:5000"
URL = "https://git.example/org/tools.git"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


def test_git_spellings() -> None:
    deps = {d.name: d for d in parse_dependencies({
        "head": {"git": URL},
        "main": {"git": URL + "/", "branch": "main"},
        "tag": {"git": URL, "tag": "v1.2.0", "subdir": "./tools/x/"},
        "rev": {"git": URL, "rev": COMMIT[:10], "private": True},
    }, default_registry=REG)}
    assert all(isinstance(d, GitDependency) for d in deps.values())
    assert deps["head"].package == f"git+{URL}"
    assert deps["main"].package == f"git+{URL}?branch=main"
    assert deps["tag"].package == f"git+{URL}?tag=v1.2.0&subdir=tools/x"
    rev = deps["rev"]
    assert isinstance(rev, GitDependency) and rev.private and rev.ref_kind == "rev"
    assert rev.to_dict() == {"git": URL, "rev": COMMIT[:10], "private": True}


@pytest.mark.parametrize(("value", "words"), [
    ({"git": "not a url"}, "git must be a repository URL"),
    ({"git": URL + "?x=1"}, "git must be a repository URL"),
    ({"git": URL, "branch": "a", "tag": "b"}, "give one of branch, tag or rev, not branch and tag"),
    ({"git": URL, "rev": "main"}, "rev must be a commit id"),
    ({"git": URL, "branch": "a..b"}, "is not a valid git ref name"),
    ({"git": URL, "branch": ""}, "branch must be a non-empty string"),
    ({"git": URL, "subdir": "../outside"}, "must stay inside the repository"),
    ({"git": URL, "subdir": "/abs"}, "must stay inside the repository"),
    ({"git": URL, "version": "^1"}, "unexpected key(s) version"),
    ({"path": "../x", "private": True}, "only registry and git dependencies can be private"),
    ({"version": "^1", "private": "yes"}, "private must be true or false"),
])
def test_git_and_private_errors(value: dict[str, Any], words: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_dependency("x", value, default_registry=REG)
    assert words in info.value.message


def test_private_is_part_of_the_spec_hash() -> None:
    public = parse_dependencies({"x": "^1"}, default_registry=REG)
    same = parse_dependencies({"x": {"version": "^1"}}, default_registry=REG)
    private = parse_dependencies({"x": {"version": "^1", "private": True}}, default_registry=REG)
    assert isinstance(private[0], RegistryDependency) and private[0].private
    assert spec_hash(public) == spec_hash(same) != spec_hash(private)


def _locked() -> Lockfile:
    source = MemorySource(
        {f"{REG}/a": {"1.0.0": {"x": {"version": "^1", "private": True},
                                "tool": {"git": URL, "branch": "main"}}},
         f"{REG}/b": {"1.0.0": {"x": "^2"}},
         f"{REG}/x": {"1.0.0": {}, "2.0.0": {}}},
        git={URL: {"refs": {"main": COMMIT}, "commits": {COMMIT: {"version": "0.3.0"}}}},
    )
    deps = parse_dependencies({"a": "^1", "b": "^1"}, default_registry=REG)
    res = resolve(deps, source, root="app@0.1.0", registry=REG)
    return Lockfile.from_resolution(res, spec_hash=spec_hash(deps))


def test_lockfile_private_copy_under_its_owner_and_git_pin() -> None:
    lock = _locked()
    keys = [e.key for e in lock.packages]
    assert keys == [f"git+{URL}?branch=main", f"{REG}/a", f"{REG}/a > {REG}/x", f"{REG}/b",
                    f"{REG}/x"]
    private = lock.get(f"{REG}/a > {REG}/x")
    assert private is not None and private.package == f"{REG}/x"
    assert private.scope == f"{REG}/a" and private.version == "1.0.0"
    assert lock.get(f"{REG}/x").version == "2.0.0"  # type: ignore[union-attr]
    git = lock.get(f"git+{URL}?branch=main")
    assert git is not None and (git.kind, git.url, git.commit, git.version) == (
        "git", URL, COMMIT, "0.3.0")
    assert lock.locked_versions()[f"git+{URL}?branch=main"] == COMMIT
    again = Lockfile.loads(lock.dumps())
    assert again == lock and again.dumps() == lock.dumps()
    text = lock.dumps().decode()
    assert f'"scope": "{REG}/a"' in text and '"commit": "' + COMMIT in text


def test_tree_shows_the_private_copy_under_its_parent() -> None:
    assert tree_lines(_locked(), "app 0.1.0", registry=REG) == [
        "app 0.1.0",
        "├── a 1.0.0",
        f"│   ├── tool 0.3.0 ({URL} @ {COMMIT[:12]})",
        "│   └── x 1.0.0 (private)",
        "└── b 1.0.0",
        "    └── x 2.0.0",
    ]


def test_lockfile_rejects_bad_git_and_orphan_private() -> None:
    lock = _locked()
    raw = lock.to_dict()
    git = next(p for p in raw["packages"] if p["kind"] == "git")
    git["commit"] = "main"
    import json
    with pytest.raises(LockfileError, match="is not a commit id"):
        Lockfile.loads(json.dumps(raw))
    raw = lock.to_dict()
    private = next(p for p in raw["packages"] if p.get("scope"))
    private["scope"] = f"{REG}/gone"
    owner = next(p for p in raw["packages"] if p["package"] == f"{REG}/a")
    owner["dependencies"]["x"] = f"{REG}/gone > {REG}/x"
    with pytest.raises(LockfileError, match="belongs to localhost:5000/gone, which has no entry"):
        Lockfile.loads(json.dumps(raw))
    raw = lock.to_dict()
    git = next(p for p in raw["packages"] if p["kind"] == "git")
    git["tree"] = "sha1:abc"
    with pytest.raises(LockfileError, match="tree 'sha1:abc' is not a digest"):
        Lockfile.loads(json.dumps(raw))
    assert DIGEST
