"""ebpm.deps.git against real git servers: bare repositories over file://, `git daemon` and
`git http-backend` on loopback. Refs to commits, the store's copy for offline use, safe
checkouts (submodules, symlinks, .git entries, build flags refused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.deps.git import GitRepo, check_build_flags
from ebpm.errors import GitError, OfflineError, UnsafeSourceError
from tests.gitserve import GitDaemon, GitHttp, Work, git

TOML = '[package]\nname = "tool"\nversion = "{v}"\n'


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def daemon(served: Path) -> Iterator[GitDaemon]:
    d = GitDaemon(served)
    yield d
    d.stop()


@pytest.fixture
def http(served: Path) -> Iterator[GitHttp]:
    h = GitHttp(served)
    yield h
    h.stop()


def _work(tmp_path: Path, served: Path, name: str = "tool.git") -> Work:
    return Work(tmp_path / f"work-{name}", served / name)


def test_file_url_branch_tag_rev_and_offline(tmp_path: Path, served: Path) -> None:
    work = _work(tmp_path, served)
    c1 = work.commit({"pkg/ebpm.toml": TOML.format(v="1.0.0"), "pkg/tool.bpf.c": "int x;\n",
                      "README.md": "top\n"}, tag="v1.0.0")
    c2 = work.commit({"pkg/ebpm.toml": TOML.format(v="1.1.0")})
    url = f"file://{work.bare}"
    store = tmp_path / "store"
    repo = GitRepo(store, url)
    assert repo.resolve("branch", "main") == c2
    assert repo.resolve("branch", "") == c2  # the remote's HEAD
    assert repo.resolve("tag", "v1.0.0") == c1
    assert repo.resolve("rev", c1[:10]) == c1
    with pytest.raises(GitError, match="no branch 'gone' in the repository"):
        repo.resolve("branch", "gone")

    out = repo.checkout(c1, "pkg", tmp_path / "co1")
    assert sorted(p.name for p in out.directory.iterdir()) == ["ebpm.toml", "tool.bpf.c"]
    assert (out.directory / "ebpm.toml").read_text() == TOML.format(v="1.0.0")
    assert out.tree.startswith("sha256:") and out.files == 2
    assert out.tree == repo.tree_digest(c1, "pkg") != repo.tree_digest(c2, "pkg")
    assert out.commit_time == work.time - 60

    # the same files at another commit give the same tree digest
    c3 = work.commit({"README.md": "changed outside the package\n"})
    assert GitRepo(store, url).resolve("branch", "main") == c3
    assert repo.tree_digest(c3, "pkg") == repo.tree_digest(c2, "pkg")

    # the store keeps the objects: offline works after the first fetch, even with no server
    work.bare.rename(tmp_path / "gone.git")
    offline = GitRepo(store, url, offline=True)
    assert offline.resolve("branch", "main") == c3
    assert offline.checkout(c1, "pkg", tmp_path / "co2").tree == out.tree
    with pytest.raises(OfflineError, match="not in the store"):
        GitRepo(tmp_path / "empty", url, offline=True).resolve("branch", "main")
    with pytest.raises(GitError, match="fetch"):
        GitRepo(tmp_path / "other", url).resolve("branch", "main")


def test_git_daemon_and_http_backend(tmp_path: Path, served: Path, daemon: GitDaemon,
                                     http: GitHttp) -> None:
    work = _work(tmp_path, served)
    c1 = work.commit({"ebpm.toml": TOML.format(v="1.0.0")}, tag="v1")
    for url in (daemon.url("tool.git"), http.url("tool.git")):
        repo = GitRepo(tmp_path / "store", url)
        assert repo.resolve("tag", "v1") == c1
        assert repo.checkout(c1, "", tmp_path / f"co-{url.split(':')[0]}").files == 1
    assert any(r.endswith("/git-upload-pack") for r in http.requests)
    # the branch moves: a new fetch follows it; the old commit stays readable
    c2 = work.commit({"ebpm.toml": TOML.format(v="1.1.0")})
    repo = GitRepo(tmp_path / "store", daemon.url("tool.git"))
    assert repo.resolve("branch", "main") == c2
    assert repo.has_commit(c1)


def test_a_bare_repository_whose_head_names_no_branch(tmp_path: Path, served: Path,
                                                      daemon: GitDaemon) -> None:
    """`git init --bare` points HEAD at master; the pushes went to main. A branch, tag or rev
    still resolves (over file:// and git://); only HEAD itself is an error that says what to
    write."""
    work = _work(tmp_path, served)
    c1 = work.commit({"ebpm.toml": TOML.format(v="1.0.0")}, tag="v1")
    git("--git-dir", str(work.bare), "symbolic-ref", "HEAD", "refs/heads/master")
    for url in (f"file://{work.bare}", daemon.url("tool.git")):
        repo = GitRepo(tmp_path / "store", url)
        assert repo.resolve("branch", "main") == c1
        assert repo.resolve("tag", "v1") == c1
        with pytest.raises(GitError) as info:
            GitRepo(tmp_path / "store", url).resolve("branch", "")
        assert info.value.message == f"{url}: its HEAD names no branch in the repository"
        assert info.value.hint == 'name one in ebpm.toml: branch = "main" (or tag, or rev)'


def test_missing_repository_and_subdir(tmp_path: Path, daemon: GitDaemon, served: Path) -> None:
    with pytest.raises(GitError) as info:
        GitRepo(tmp_path / "s", daemon.url("nope.git")).resolve("branch", "main")
    assert "git://127.0.0.1" in info.value.message and info.value.hint
    work = _work(tmp_path, served)
    c1 = work.commit({"ebpm.toml": TOML.format(v="1.0.0")})
    with pytest.raises(GitError, match="sub is not a directory at commit"):
        GitRepo(tmp_path / "s", daemon.url("tool.git")).checkout(c1, "sub", tmp_path / "co")
    # git's reason, not its closing advice ("… and the repository exists.")
    with pytest.raises(GitError) as info:
        GitRepo(tmp_path / "s", f"file://{served}/nope.git").resolve("branch", "main")
    assert info.value.message == (f"file://{served}/nope.git: fetch: '{served}/nope.git' does "
                                  "not appear to be a git repository")
    # a misspelt branch or tag names the ones there are
    repo = GitRepo(tmp_path / "s", daemon.url("tool.git"))
    with pytest.raises(GitError) as info:
        repo.resolve("branch", "mian")
    assert info.value.message.endswith("no branch 'mian' in the repository (it has branches: "
                                       "main)")
    with pytest.raises(GitError) as info:
        repo.resolve("tag", "v1")
    assert info.value.message.endswith("no tag 'v1' in the repository")


def test_refuses_symlink_leaving_the_package(tmp_path: Path, served: Path) -> None:
    work = _work(tmp_path, served)
    work.symlink("pkg/inside", "tool.bpf.c")
    work.symlink("pkg/up", "../README.md")
    work.symlink("pkg/abs", "/etc/passwd")
    commit = work.commit({"pkg/ebpm.toml": TOML.format(v="1.0.0"), "pkg/tool.bpf.c": "int x;",
                          "README.md": "x"})
    repo = GitRepo(tmp_path / "store", f"file://{work.bare}")
    dest = tmp_path / "co"
    with pytest.raises(UnsafeSourceError, match="symlink abs -> /etc/passwd leaves the package"):
        repo.checkout(commit, "pkg", dest)
    assert not dest.exists() or not any(dest.iterdir())  # nothing written
    # from the repository root, ../README.md is still outside `pkg`, but `up` is fine there
    with pytest.raises(UnsafeSourceError, match="symlink pkg/abs"):
        repo.checkout(commit, "", tmp_path / "co-root")


def test_refuses_submodules(tmp_path: Path, served: Path) -> None:
    other = _work(tmp_path, served, "other.git")
    other.commit({"x": "1"})
    work = _work(tmp_path, served)
    work.commit({"ebpm.toml": TOML.format(v="1.0.0")})
    git("-c", "protocol.file.allow=always", "submodule", "--quiet", "add",
        str(other.bare), "vendor/evil",
        cwd=work.dir)
    modules = (work.dir / ".gitmodules").read_text().replace(
        str(other.bare), "https://elsewhere.example/evil.git")
    commit = work.commit({".gitmodules": modules})
    repo = GitRepo(tmp_path / "store", f"file://{work.bare}")
    with pytest.raises(UnsafeSourceError) as info:
        repo.checkout(commit, "", tmp_path / "co")
    assert info.value.message.endswith(
        "vendor/evil is a submodule pointing outside the repository "
        "(https://elsewhere.example/evil.git)")
    assert "does not fetch submodules" in (info.value.hint or "")


def test_refuses_a_smuggled_git_directory(tmp_path: Path, served: Path) -> None:
    """A tree holding `.git/hooks/post-checkout` (made with git mktree, which git add refuses)."""
    work = _work(tmp_path, served)
    work.commit({"ebpm.toml": TOML.format(v="1.0.0")})
    bare = str(work.bare)
    hook = git("--git-dir", bare, "hash-object", "-w", "--stdin", input=b"#!/bin/sh\nrm -rf ~\n")
    hooks = git("--git-dir", bare, "mktree", input=f"100755 blob {hook}\tpost-checkout\n".encode())
    dotgit = git("--git-dir", bare, "mktree", input=f"040000 tree {hooks}\thooks\n".encode())
    toml = git("--git-dir", bare, "hash-object", "-w", "--stdin",
               input=TOML.format(v="1.0.0").encode())
    top = git("--git-dir", bare, "mktree",
              input=f"040000 tree {dotgit}\t.git\n100644 blob {toml}\tebpm.toml\n".encode())
    commit = git("--git-dir", bare, "commit-tree", top, "-m", "evil")
    git("--git-dir", bare, "update-ref", "refs/heads/evil", commit)
    repo = GitRepo(tmp_path / "store", f"file://{work.bare}")
    assert repo.resolve("branch", "evil") == commit
    with pytest.raises(UnsafeSourceError, match=r"\.git/hooks/post-checkout: a \.git entry"):
        repo.checkout(commit, "", tmp_path / "co")


@pytest.mark.parametrize(("build", "words"), [
    ({"cflags": ["-fplugin=/tmp/x.so"]}, "cflags '-fplugin=/tmp/x.so' is not allowed"),
    ({"cflags": ["-Xclang", "-load"]}, "cflags '-Xclang' is not allowed"),
    ({"cflags": ["-I/usr/include/evil"]}, "includes from outside the package"),
    ({"cflags": ["-I../up"]}, "includes from outside the package"),
    ({"vmlinux": "/etc/shadow"}, "[build] vmlinux = '/etc/shadow' leaves the package"),
    ({"source": "../x.bpf.c"}, "[build] source = '../x.bpf.c' leaves the package"),
])
def test_build_flags_refused(build: dict[str, object], words: str) -> None:
    with pytest.raises(UnsafeSourceError) as info:
        check_build_flags(build, where="tool")
    assert words in info.value.message


def test_build_flags_allowed() -> None:
    check_build_flags({"cflags": ["-DX=1", "-Wall", "-O2", "-g", "-Iinclude", "-mcpu=v3",
                                  "-fno-builtin"], "source": "src/x.bpf.c"}, where="tool")


def _package_files(name: str, version: str, tmp: Path) -> dict[str, str | bytes | None]:
    """A real package made by `ebpm init`, as {path: content} for a commit under `pkg/`."""
    from ebpm.build.scaffold import init_package

    target = tmp / f"init-{name}-{version}"
    init_package(name, directory=target)
    files: dict[str, str | bytes | None] = {}
    for path in sorted(target.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "ebpm.toml":
                data = data.replace(b'version = "0.1.0"', f'version = "{version}"'.encode())
            files[f"pkg/{path.relative_to(target).as_posix()}"] = data
    return files


def test_build_commit_reproduces(tmp_path: Path, served: Path) -> None:
    """Two builds of one commit, from two stores and two checkouts, give one digest."""
    from ebpm.deps.git import build_commit

    work = _work(tmp_path, served)
    commit = work.commit(_package_files("gtool", "1.2.0", tmp_path))
    url = f"file://{work.bare}"
    one = build_commit(tmp_path / "s1", url, commit, "pkg", offline=False)
    two = build_commit(tmp_path / "s2", url, commit, "pkg", offline=False)
    assert one.artifact.digest == two.artifact.digest
    assert one.tree == two.tree == GitRepo(tmp_path / "s1", url).tree_digest(commit, "pkg")
    notes = one.artifact.manifest.annotations
    assert notes["org.opencontainers.image.revision"] == commit
    assert notes["org.opencontainers.image.version"] == "1.2.0"
    assert notes["org.opencontainers.image.created"]


def test_a_commit_that_does_not_compile_is_named(tmp_path: Path, served: Path) -> None:
    """A build error of a git package names the repository, subdir and commit it came from."""
    from ebpm.deps.git import build_commit
    from ebpm.errors import CompileError

    work = _work(tmp_path, served)
    files = _package_files("gbad", "1.0.0", tmp_path)
    source = files["pkg/gbad.bpf.c"]
    assert isinstance(source, bytes)
    files["pkg/gbad.bpf.c"] = source + b"\nthis is not C;\n"
    commit = work.commit(files)
    url = f"file://{work.bare}"
    with pytest.raises(CompileError) as info:
        build_commit(tmp_path / "s", url, commit, "pkg", offline=False)
    assert info.value.message.startswith(f"{url} pkg at {commit[:12]}: compile gbad.bpf.c: ")
    assert info.value.hint == ("that commit does not build here: fix it upstream, or pin one "
                               "that builds (tag or rev in ebpm.toml), then run this command "
                               "again")


def test_no_ebpm_toml_names_the_package_directories(tmp_path: Path, served: Path) -> None:
    from ebpm.deps.git import describe
    from ebpm.resolver.dependency import GitDependency, parse_dependencies

    work = _work(tmp_path, served)
    work.commit({"tools/a/ebpm.toml": TOML.format(v="1.0.0"), "README.md": "top\n"})
    url = f"file://{work.bare}"
    for subdir, shown in (("", "ebpm.toml"), ("tools", "tools/ebpm.toml")):
        spec = {"git": url, "branch": "main", **({"subdir": subdir} if subdir else {})}
        dep = parse_dependencies({"t": spec}, default_registry="localhost:5000")[0]
        assert isinstance(dep, GitDependency)
        with pytest.raises(GitError) as info:
            describe(tmp_path / "s", dep, offline=False)
        message = info.value.message
        assert f": no {shown} at commit " in message, message
        assert message.endswith(" (packages there: subdir = 'tools/a')"), message


def test_a_bundle_adds_a_commit_and_nothing_else(tmp_path: Path, served: Path) -> None:
    """What `ebpm load` does with the git objects of `save --locked`: the commit lands under
    refs/ebpm/pinned/; a commit field that is not a commit id (a refspec aimed at a branch)
    is refused, so an archive cannot move a branch of the store's copy."""
    work = _work(tmp_path, served)
    c1 = work.commit({"pkg/ebpm.toml": TOML.format(v="1.0.0")})
    source = GitRepo(tmp_path / "s1", f"file://{work.bare}")
    source.resolve("branch", "main")
    bundle = tmp_path / "b.bundle"
    bundle.write_bytes(source.bundle(c1))
    assert source.bundle(c1) == bundle.read_bytes()  # deterministic
    target = GitRepo(tmp_path / "s2", "https://elsewhere.example/tool.git", offline=True)
    assert not target.adopt(bundle, f"{c1}:refs/heads/main")
    assert not target.adopt(bundle, "0" * 40)  # not in the bundle
    assert target.adopt(bundle, c1) and target.has_commit(c1)
    refs = git("--git-dir", str(target.path), "for-each-ref", "--format=%(refname)")
    assert refs.splitlines() == [f"refs/ebpm/pinned/{c1}"]
    with pytest.raises(OfflineError, match="no branch 'main' in the store's copy"):
        target.resolve("branch", "main")
