"""Path dependencies: an edit inside the package directory changes its digest (the lock goes
stale); build output, hidden directories and the lockfile do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.deps.paths import directory_digest, stale_paths
from ebpm.record import replace
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


def test_path_package_built_at_install_and_rebuilt_after_any_edit(
        tmp_path: Path, ebpm_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """install builds a path package (ebpm build); the lock stays fresh after the build; an
    edit anywhere in it (here a header in a subdirectory, older than the build) makes the lock
    stale and the next install builds it again."""
    import os

    from ebpm.build.scaffold import init_package
    from tests.cli import ebpm

    app = tmp_path / "app"
    app.mkdir()
    init_package("near", directory=app / "near")
    (app / "near" / "include").mkdir()
    (app / "near" / "include" / "extra.h").write_text("/* nothing yet */\n")
    (app / "ebpm.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\n\n'
                                   '[dependencies]\nnear = { path = "near" }\n')
    monkeypatch.chdir(app)
    built = app / "near" / ".ebpm" / "config.json"
    assert not built.exists()
    r = ebpm(capsys, "install")
    assert r.code == 0, r.err
    assert built.is_file()
    first = built.stat().st_mtime_ns
    r = ebpm(capsys, "install", "--locked")  # the build did not make the lock stale
    assert r.code == 0, r.err
    assert built.stat().st_mtime_ns == first  # and nothing was built again

    header = app / "near" / "include" / "extra.h"
    header.write_text("/* changed */\n")
    os.utime(header, (1, 1))  # an edit that looks older than the build
    r = ebpm(capsys, "install", "--locked")
    assert r.code == 1 and "stale: path package near changed since it was locked" in r.err
    r = ebpm(capsys, "install")
    assert r.code == 0, r.err
    assert built.stat().st_mtime_ns != first  # built again from the edited files
    assert ebpm(capsys, "install", "--locked").code == 0


def test_a_path_dependency_that_does_not_compile_is_named(
        tmp_path: Path, ebpm_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """clang's lines name a file of the dependency: the error says which dependency, and the
    hint how to build it alone."""
    from ebpm.build.scaffold import init_package
    from tests.cli import ebpm

    app = tmp_path / "app"
    app.mkdir()
    init_package("pd", directory=tmp_path / "pd")
    source = tmp_path / "pd" / "pd.bpf.c"
    source.write_text(source.read_text() + "\nthis is not C;\n")
    (app / "ebpm.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\n\n'
                                   '[dependencies]\npd = { path = "../pd" }\n')
    monkeypatch.chdir(app)
    r = ebpm(capsys, "install")
    assert r.code == 1
    lines = r.err.splitlines()
    assert lines[0].startswith("error: path dependency ../pd: compile pd.bpf.c: "), r.err
    assert lines[-1] == ("hint: fix the source of ../pd (`ebpm build ../pd` builds it alone), "
                         "then run this command again")
