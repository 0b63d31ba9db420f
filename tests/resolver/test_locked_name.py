"""`ebpm run NAME` inside a project: NAME stands for what ebpm.lock pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.deps.locked import find_locked
from ebpm.errors import UsageError
from ebpm.resolver.lockfile import LockEntry, Lockfile

D = "sha256:" + "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _lock(root: Path) -> None:
    entries = [
        LockEntry(package="localhost:5000/tools/opensnoop", version="1.2.0", tag="1.2.0",
                  manifest_digest=D, config_digest=D),
        LockEntry(package="ghcr.io/org/lib", version="2.0.0", tag="2.0.0", manifest_digest=D,
                  config_digest=D),
        LockEntry(package="localhost:5000/lib", version="1.0.0", tag="1.0.0", manifest_digest=D,
                  config_digest=D),
        LockEntry(package="git+https://h/x/gtool.git?branch=main", kind="git",
                  url="https://h/x/gtool.git", commit=COMMIT, version="0.3.0",
                  manifest_digest=D, config_digest=D),
    ]
    deps = [("snoop", "localhost:5000/tools/opensnoop"),
            ("tool", "git+https://h/x/gtool.git?branch=main"), ("lib", "localhost:5000/lib")]
    Lockfile.create("sha256:" + "0" * 64, deps, entries).dump(root / "ebpm.lock")


def test_names_in_a_project(tmp_path: Path) -> None:
    _lock(tmp_path)
    inner = tmp_path / "src" / "deep"
    inner.mkdir(parents=True)
    found = find_locked("snoop", inner)  # declared name, from a subdirectory
    assert found is not None
    assert found.reference == f"localhost:5000/tools/opensnoop@{D}"
    assert found.origin == f"snoop 1.2.0 (locked in {tmp_path / 'ebpm.lock'})"
    assert find_locked("opensnoop", tmp_path).entry.version == "1.2.0"  # type: ignore[union-attr]
    git = find_locked("gtool", tmp_path)
    assert git is not None and git.entry.kind == "git" and git.reference == ""
    assert find_locked("lib", tmp_path).entry.package == "localhost:5000/lib"  # type: ignore[union-attr]
    assert find_locked("other", tmp_path) is None
    assert find_locked("opensnoop:1.0.0", tmp_path) is None  # explicit references stay explicit
    assert find_locked("snoop", tmp_path.parent / "elsewhere") is None


def test_ambiguous_name(tmp_path: Path) -> None:
    entries = [LockEntry(package=f"{r}/lib", version="1.0.0", tag="1.0.0", manifest_digest=D,
                         config_digest=D) for r in ("ghcr.io/a", "ghcr.io/b")]
    Lockfile.create("sha256:" + "0" * 64, [("a", "ghcr.io/a/lib"), ("b", "ghcr.io/b/lib")],
                    entries).dump(tmp_path / "ebpm.lock")
    with pytest.raises(UsageError, match="2 packages of .* are called that"):
        find_locked("lib", tmp_path)
