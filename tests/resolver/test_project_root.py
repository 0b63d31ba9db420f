"""The project commands find their project from a subdirectory, as cargo finds Cargo.toml: the
nearest directory upwards holding ebpm.toml or ebpm.lock; `-C DIR` is used as given (real
`ebpm init` project, real registry)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli import ebpm
from tests.registryd import Registryd
from tests.resolver.test_resolver_install import publish

pytestmark = pytest.mark.registry


@pytest.fixture
def app(registry: Registryd, tmp_path: Path, ebpm_env: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """`ebpm init app` with one dependency (pr-a ^1) in the test registry."""
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    publish(registry, {"pr-a": {"1.0.0": {}}})
    root = tmp_path / "app"
    assert ebpm(capsys, "init", "app", "--dir", str(root)).code == 0
    toml = root / "ebpm.toml"
    toml.write_text(toml.read_text().replace("[dependencies]\n", '[dependencies]\npr-a = "^1"\n'))
    (root / "src" / "deep").mkdir(parents=True)
    return root


def test_dependency_commands_from_a_subdirectory(app: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(app / "src" / "deep")
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == "../../ebpm.lock: 1 package locked (written)"
    assert (app / "ebpm.lock").is_file() and not list((app / "src").rglob("ebpm.lock"))

    r = ebpm(capsys, "tree")
    assert (r.code, r.out.splitlines()[0]) == (0, "app 0.1.0"), r.err
    r = ebpm(capsys, "outdated")
    assert (r.code, r.out, r.err) == (0, "", "all dependencies are up to date\n")
    r = ebpm(capsys, "update", "--allow-unsigned")
    assert r.code == 0 and "../../ebpm.lock: 1 package locked (unchanged)" in r.out, r.err
    r = ebpm(capsys, "install", "--allow-unsigned")
    assert (r.code, r.out) == (0, "installed 1 package: 0 fetched, 1 from the store\n"), r.err

    # a missing lock is written in the project, and the message says where
    (app / "ebpm.lock").unlink()
    r = ebpm(capsys, "install", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out == "installed 1 package: 0 fetched, 1 from the store (../../ebpm.lock written)\n"
    assert (app / "ebpm.lock").is_file() and not list((app / "src").rglob("ebpm.lock"))

    r = ebpm(capsys, "save", "--locked", "--allow-unsigned", "-o", "deps.tar")
    assert r.code == 0 and (app / "src" / "deep" / "deps.tar").is_file(), r.err

    # add and remove edit the project's ebpm.toml (and lock), not one here
    r = ebpm(capsys, "remove", "pr-a", "--allow-unsigned")
    assert r.code == 0 and "pr-a" not in (app / "ebpm.toml").read_text(), r.err
    r = ebpm(capsys, "add", "pr-a", "--allow-unsigned")
    assert r.code == 0 and "../../ebpm.lock: 1 package locked (written)" in r.out, r.err
    assert "pr-a" in (app / "ebpm.toml").read_text()
    assert not list((app / "src").rglob("ebpm.*"))

    # a directory holding only ebpm.lock is a project too (install --frozen needs no ebpm.toml)
    deploy = tmp_path / "deploy"
    (deploy / "logs").mkdir(parents=True)
    shutil.copy(app / "ebpm.lock", deploy / "ebpm.lock")
    monkeypatch.chdir(deploy / "logs")
    r = ebpm(capsys, "--offline", "install", "--frozen", "--allow-unsigned")
    assert (r.code, r.out) == (0, "installed 1 package: 0 fetched, 1 from the store\n"), r.err
    r = ebpm(capsys, "tree")
    assert (r.code, r.out.splitlines()[0]) == (0, "deploy"), r.err


def test_an_explicit_directory_is_used_as_given(app: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    r = ebpm(capsys, "lock", "-C", str(app), "--allow-unsigned")
    assert r.code == 0, r.err
    monkeypatch.chdir(app / "src")
    r = ebpm(capsys, "tree")  # found upwards without -C; with -C . not searched
    assert (r.code, r.out.splitlines()[0]) == (0, "app 0.1.0"), r.err
    for command in (["tree", "-C", "."], ["outdated", "-C", "."],
                    ["install", "-C", ".", "--allow-unsigned"],
                    ["lock", "-C", ".", "--allow-unsigned"]):
        r = ebpm(capsys, *command)
        assert r.code == 1, (command, r.out)
        assert ("error: ebpm.toml: no ebpm.toml here\n" in r.err
                or "error: ebpm.lock: no lockfile\n" in r.err), (command, r.err)
    assert not list((app / "src").rglob("ebpm.lock"))
    r = ebpm(capsys, "tree", "-C", "..")
    assert (r.code, r.out.splitlines()[0]) == (0, "app 0.1.0"), r.err


def test_the_nearest_project_wins(app: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A package inside another (a path dependency, say) is the project below it, as a crate
    inside a crate is for cargo: its parent's lock is not read."""
    assert ebpm(capsys, "lock", "-C", str(app), "--allow-unsigned").code == 0
    inner = app / "src" / "inner"
    assert ebpm(capsys, "init", "inner", "--dir", str(inner)).code == 0
    (inner / "x").mkdir()
    monkeypatch.chdir(inner / "x")
    r = ebpm(capsys, "tree")
    assert (r.code, r.err.splitlines()[0]) == (1, "error: ../ebpm.lock: no lockfile")

    from ebpm.deps.locked import find_lockfile

    assert find_lockfile(inner / "x") is None
    assert find_lockfile(app / "src" / "deep") == app.resolve() / "ebpm.lock"


def test_no_project_here_or_above(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path.resolve()
    assert not [d for d in (here, *here.parents)
                if (d / "ebpm.toml").exists() or (d / "ebpm.lock").exists()]
    monkeypatch.chdir(tmp_path)
    for command in (["install"], ["lock"], ["update"], ["tree"], ["outdated"], ["build"],
                    ["publish"], ["push", "localhost:5000/x/y:1.0.0"],
                    ["save", "--locked", "-o", "x.tar"]):
        r = ebpm(capsys, *command)
        assert r.code == 1 and r.out == "", (command, r.err)
        assert r.err.splitlines() == [
            f"error: no ebpm.toml in {here} or any parent directory",
            "hint: run it in a package's directory (or below it), or pass the directory; "
            "`ebpm init NAME` starts a package"], command
