"""Git dependencies end to end: a real registry, a repository served by `git daemon`, real
builds. lock pins the commit, tree digest and build; install rebuilds into an empty store and
must reproduce; the store keeps the git objects for --offline; update moves the pin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.deps.install import install
from ebpm.deps.lock import lock, update
from ebpm.errors import DigestMismatchError, OfflineError
from ebpm.oci.layout import Store
from ebpm.resolver.lockfile import Lockfile
from tests.cli import ebpm
from tests.gitserve import GitDaemon, Work
from tests.registryd import Registryd
from tests.resolver.test_git_source import _package_files
from tests.resolver.test_resolver_install import publish

pytestmark = pytest.mark.registry


@pytest.fixture
def env(registry: Registryd, monkeypatch: pytest.MonkeyPatch) -> Registryd:
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    return registry


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    served = tmp_path / "served"
    served.mkdir()
    d = GitDaemon(served)
    yield d
    d.stop()


def _tool_repo(tmp_path: Path, daemon: GitDaemon, version: str, dep: str) -> Work:
    work = Work(tmp_path / "work", daemon.base / "gtool.git")
    files = _package_files("gtool", version, tmp_path)
    toml = files["pkg/ebpm.toml"]
    assert isinstance(toml, bytes)
    files["pkg/ebpm.toml"] = toml.replace(b"[dependencies]\n",
                                          f'[dependencies]\n{dep} = "^1"\n'.encode())
    work.commit(files, tag=f"v{version}")
    return work


def _app(root: Path, spec: str) -> Path:
    root.mkdir(parents=True)
    (root / "ebpm.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\ntool = {spec}\n')
    return root


def test_git_lock_install_reproduce_offline_update(
        env: Registryd, daemon: GitDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    publish(env, {"glib": {"1.0.0": {}, "1.1.0": {}}})
    work = _tool_repo(tmp_path, daemon, "1.0.0", "glib")
    first = work.commit({}, message="head")
    url = daemon.url("gtool.git")
    app = _app(tmp_path / "app", f'{{ git = "{url}", branch = "main", subdir = "pkg" }}')
    key = f"git+{url}?branch=main&subdir=pkg"

    result = lock(app, allow_unsigned=True)
    locked = Lockfile.load(app / "ebpm.lock")
    entry = locked.get(key)
    assert entry is not None and entry.kind == "git"
    assert (entry.commit, entry.version, entry.url, entry.subdir) == (first, "1.0.0", url, "pkg")
    assert entry.tree.startswith("sha256:") and entry.manifest_digest.startswith("sha256:")
    assert entry.dependencies == (("glib", f"{env.host}/glib"),)
    assert locked.get(f"{env.host}/glib").version == "1.1.0"  # type: ignore[union-attr]
    assert dict(locked.dependencies) == {"tool": key}
    assert {p.kind for p in result.packages} == {"git", "registry"}

    # an empty store: fetched again, rebuilt, and the rebuild reproduces the pinned digest
    other = Store(tmp_path / "store2")
    got = install(app, frozen=True, allow_unsigned=True, store=other)
    git_got = next(p for p in got.packages if p.kind == "git")
    assert git_got.digest == entry.manifest_digest and not git_got.cached
    again = install(app, frozen=True, allow_unsigned=True, store=other)
    assert all(p.cached for p in again.packages)

    # the store kept the git objects: with the server gone, a fresh build still works offline
    daemon.stop()
    from ebpm.deps.git import store_name

    assert other.untag(store_name(url, "pkg", first))  # forget the build, keep the objects
    offline = install(app, frozen=True, allow_unsigned=True, store=Store(tmp_path / "store2"),
                      access=_offline())
    assert {p.package for p in offline.packages} == {key, f"{env.host}/glib"}
    with pytest.raises(OfflineError, match="not in the store"):
        install(app, frozen=True, allow_unsigned=True, store=Store(tmp_path / "store3"),
                access=_offline())

    # a lock pinning another build: the rebuild stops with both digests, nothing stored
    raw = json.loads((app / "ebpm.lock").read_text())
    pinned = "sha256:" + "0" * 64
    next(p for p in raw["packages"] if p["kind"] == "git")["manifest_digest"] = pinned
    (tmp_path / "app2").mkdir()
    (tmp_path / "app2" / "ebpm.lock").write_text(json.dumps(raw))
    daemon2 = GitDaemon(daemon.base)
    raw_text = (tmp_path / "app2" / "ebpm.lock").read_text().replace(url, daemon2.url(
        "gtool.git"))
    (tmp_path / "app2" / "ebpm.lock").write_text(raw_text)
    try:
        with pytest.raises(DigestMismatchError) as info:
            install(tmp_path / "app2", frozen=True, allow_unsigned=True,
                    store=Store(tmp_path / "store4"))
        assert f"the rebuild gives {entry.manifest_digest}, the lock pins {pinned}" in \
            info.value.message

        # the branch moves on: lock keeps the pin, update moves it
        url2 = daemon2.url("gtool.git")
        (app / "ebpm.toml").write_text((app / "ebpm.toml").read_text().replace(url, url2))
        lock(app, allow_unsigned=True)
        key2 = key.replace(url, url2)
        assert Lockfile.load(app / "ebpm.lock").get(key2).commit == first  # type: ignore[union-attr]
        toml = (work.dir / "pkg" / "ebpm.toml").read_text().replace('"1.0.0"', '"1.1.0"')
        second = work.commit({"pkg/ebpm.toml": toml}, message="1.1.0")
        assert lock(app, allow_unsigned=True).written is False
        publish(env, {"glib": {"2.0.0": {}}})
        from ebpm.deps.outdated import outdated

        assert [(o.package, o.current, o.wanted, o.latest) for o in outdated(app)] == [
            (f"{env.host}/glib", "1.1.0", "1.1.0", "2.0.0"),  # the git package wants ^1
            (key2, f"1.0.0@{first[:12]}", f"1.1.0@{second[:12]}", f"1.1.0@{second[:12]}"),
        ]
        moved = update(app, ("tool",), allow_unsigned=True)
        assert moved.changes == ((key2, f"1.0.0@{first[:12]}", f"1.1.0@{second[:12]}"),)
        assert Lockfile.load(app / "ebpm.lock").get(key2).commit == second  # type: ignore[union-attr]

        monkeypatch.chdir(app)
        r = ebpm(capsys, "tree")
        assert r.code == 0
        assert r.out.splitlines() == [
            "app 0.1.0",
            f"└── tool 1.1.0 ({url2} pkg @ {second[:12]})",
            "    └── glib 1.1.0",
        ]
    finally:
        daemon2.stop()


def _offline() -> object:
    from ebpm.access import RegistryAccess

    return RegistryAccess.from_env(offline=True)


def test_outdated_shows_transitive_git_packages(
        env: Registryd, daemon: GitDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A git source declared by a registry package, and one declared by a git package: their
    refs moving on shows rows like the project's own (online, then offline from the store's
    copies, saying so), and outdated exits 3 for CI."""
    leaf, leaf2 = Work(tmp_path / "w1", daemon.base / "leaf.git"), Work(
        tmp_path / "w2", daemon.base / "leaf2.git")
    one = leaf.commit(_package_files("gleaf", "1.0.0", tmp_path))
    two = leaf2.commit(_package_files("gleaftwo", "1.0.0", tmp_path))
    url, url2 = daemon.url("leaf.git"), daemon.url("leaf2.git")
    publish(env, {"tgreg": {"1.0.0": {"gleaf": {"git": url, "branch": "main",
                                                 "subdir": "pkg"}}}})
    mid = Work(tmp_path / "w3", daemon.base / "mid.git")
    files = _package_files("gmid", "1.0.0", tmp_path)
    toml = files["pkg/ebpm.toml"]
    assert isinstance(toml, bytes)
    files["pkg/ebpm.toml"] = toml.replace(
        b"[dependencies]\n",
        f'[dependencies]\ngleaftwo = {{ git = "{url2}", subdir = "pkg" }}\n'.encode())
    mid.commit(files)
    app = tmp_path / "app"
    app.mkdir()
    (app / "ebpm.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\ntgreg = "^1"\n'
        f'mid = {{ git = "{daemon.url("mid.git")}", subdir = "pkg" }}\n')
    monkeypatch.chdir(app)
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 0, r.err
    r = ebpm(capsys, "outdated")
    assert (r.code, r.out, r.err) == (0, "", "all dependencies are up to date\n")

    newer = leaf.commit({"pkg/README.md": "moved on"}, message="1.0.0 again")
    newer2 = leaf2.commit({"pkg/README.md": "moved on"}, message="1.0.0 again")
    r = ebpm(capsys, "--json", "outdated")
    assert r.code == 3, r.err
    rows = {row["package"]: (row["current"], row["wanted"]) for row in json.loads(r.out)}
    assert rows == {
        f"git+{url}?branch=main&subdir=pkg": (f"1.0.0@{one[:12]}", f"1.0.0@{newer[:12]}"),
        f"git+{url2}?subdir=pkg": (f"1.0.0@{two[:12]}", f"1.0.0@{newer2[:12]}"),
    }
    r = ebpm(capsys, "--offline", "outdated")
    assert r.code == 3
    assert r.err.startswith("offline: versions from the tag lists cached in the store (oldest ")
    assert "; git refs from the store's copies of the repositories;" in r.err
    assert f"1.0.0@{newer[:12]}" in r.out and f"1.0.0@{newer2[:12]}" in r.out

    # the row's package id moves it (as for a transitive registry package)
    key = f"git+{url}?branch=main&subdir=pkg"
    r = ebpm(capsys, "update", key, "--allow-unsigned")
    assert r.code == 0, r.err
    assert f"updated {key} 1.0.0@{one[:12]} -> 1.0.0@{newer[:12]}" in r.out
    r = ebpm(capsys, "--json", "outdated")
    assert r.code == 3 and [row["package"] for row in json.loads(r.out)] == [
        f"git+{url2}?subdir=pkg"]
