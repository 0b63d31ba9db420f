"""Path dependencies: an edit inside the package directory changes its digest (the lock goes
stale); build output, hidden directories and the lockfile do not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ebpm.deps.paths import directory_digest, stale_paths
from ebpm.resolver.lockfile import LockEntry, Lockfile


def test_digest_follows_sources_only(tmp_path: Path) -> None:
    pkg = tmp_path / "near"
    (pkg / "src").mkdir(parents=True)
    (pkg / "ebpm.toml").write_text('[package]\nname = "near"\nversion = "0.1.0"\n')
    (pkg / "src" / "x.h").write_text("struct x { int a; };\n")
    first = directory_digest(pkg)
    (pkg / ".ebpm").mkdir()
    (pkg / ".ebpm" / "near.bpf.o").write_bytes(b"built")
    (pkg / ".git").mkdir()
    (pkg / ".git" / "HEAD").write_text("ref")
    (pkg / "ebpm.lock").write_text("{}")
    assert directory_digest(pkg) == first
    (pkg / "src" / "x.h").write_text("struct x { int a; int b; };\n")
    second = directory_digest(pkg)
    assert second != first
    (pkg / "src" / "x.h").chmod(0o755)
    assert directory_digest(pkg) != second

    entry = LockEntry(package="path:near", kind="path", path="near", version="0.1.0",
                      tree=second)
    lock = Lockfile.create("sha256:" + "0" * 64, [("near", "path:near")], [entry])
    assert Lockfile.loads(lock.dumps()) == lock
    assert stale_paths(lock, tmp_path) == ["near"]  # mode changed since
    fresh = lock.with_entry(replace(entry, tree=directory_digest(pkg)))
    assert stale_paths(fresh, tmp_path) == []
