"""ebpm add / ebpm remove against a real distribution registry: ebpm.toml edited in place with
its comments, ebpm.lock moved only for what changed, nothing written on any failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebpm.resolver.lockfile import Lockfile
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.resolver.test_resolver_install import publish

pytestmark = pytest.mark.registry

APP = '''\
# the app's manifest
[package]
name = "app"      # keep this comment
version = "0.1.0"

[dependencies]
# tracing tools
{first} = "^1"    # the first one

# build settings follow
[build]
cflags = ["-O2"]
'''


@pytest.fixture
def env(registry: Registryd, monkeypatch: pytest.MonkeyPatch, ebpm_env: Path) -> Registryd:
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    return registry


def _app(root: Path, first: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root.mkdir(parents=True)
    (root / "ebpm.toml").write_text(APP.format(first=first))
    monkeypatch.chdir(root)
    return root


def _stderr(err: str) -> str:
    """stderr without the warning every --allow-unsigned command starts with."""
    return err.removeprefix("warning: --allow-unsigned: signatures are not enforced\n")


def _versions(root: Path) -> dict[str, str]:
    return Lockfile.load(root / "ebpm.lock").locked_versions()


def test_add_keeps_comments_and_moves_only_the_new_package(
        env: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = env.host
    publish(env, {"ad-a": {"1.0.0": {}}, "ad-b": {"0.1.0": {}, "0.2.0": {"ad-c": "^1"}},
                  "ad-c": {"1.0.0": {}}})
    app = _app(tmp_path / "app", "ad-a", monkeypatch)
    assert ebpm(capsys, "lock", "--allow-unsigned").code == 0
    publish(env, {"ad-a": {"1.1.0": {}}})  # newer, but the lock keeps 1.0.0 through the add

    r = ebpm(capsys, "add", "ad-b", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out == (f"added ad-b ^0.2.0 ({h}/ad-b)\n"
                     f"added   {h}/ad-b 0.2.0\n"
                     f"added   {h}/ad-c 1.0.0\n"
                     "ebpm.lock: 3 packages locked (written)\n")
    assert (app / "ebpm.toml").read_text() == APP.format(first="ad-a").replace(
        '"^1"    # the first one\n', '"^1"    # the first one\nad-b = "^0.2.0"\n')
    assert _versions(app) == {f"{h}/ad-a": "1.0.0", f"{h}/ad-b": "0.2.0", f"{h}/ad-c": "1.0.0"}
    assert ebpm(capsys, "install", "--locked", "--allow-unsigned").code == 0  # not stale

    # Again with another range: the requirement is replaced where it stands, and says so.
    r = ebpm(capsys, "add", "ad-b@~0.1", "--allow-unsigned", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["dependencies"] == [{"action": "replaced", "name": "ad-b",
                                    "package": f"{h}/ad-b", "requirement": "~0.1",
                                    "previous": "^0.2.0"}]
    assert doc["manifest_written"] and doc["lock"]["written"] and not doc["dry_run"]
    assert doc["lock"]["changes"] == [
        {"package": f"{h}/ad-b", "from": "0.2.0", "to": "0.1.0"},
        {"package": f"{h}/ad-c", "from": "1.0.0", "to": ""}]
    assert 'ad-b = "~0.1"\n' in (app / "ebpm.toml").read_text()
    assert _versions(app) == {f"{h}/ad-a": "1.0.0", f"{h}/ad-b": "0.1.0"}

    # Replacing the first one's range keeps its comment and alignment; a full reference in the
    # default registry is written as the short name; the same again is said to be unchanged.
    r = ebpm(capsys, "add", f"{h}/ad-a@>=1.1", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out.splitlines()[:2] == [f"replaced ad-a ^1 -> >=1.1 ({h}/ad-a)",
                                      f"updated {h}/ad-a 1.0.0 -> 1.1.0"]
    assert 'ad-a = ">=1.1"    # the first one\n' in (app / "ebpm.toml").read_text()
    r = ebpm(capsys, "add", "ad-a@>=1.1", "--allow-unsigned")
    assert r.code == 0 and r.out == (f"unchanged ad-a >=1.1 ({h}/ad-a)\n"
                                     "ebpm.lock: 2 packages locked (unchanged)\n"), r.err


def test_a_failed_or_dry_run_add_writes_nothing(
        env: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = env.host
    publish(env, {"af-a": {"1.0.0": {}}, "af-b": {"1.0.0": {"af-gone": "^1"}},
                  "af-c": {"2.0.0": {}}})
    app = _app(tmp_path / "app", "af-a", monkeypatch)
    assert ebpm(capsys, "lock", "--allow-unsigned").code == 0
    files = {p: (app / p).read_bytes() for p in ("ebpm.toml", "ebpm.lock")}

    def unchanged() -> bool:
        return {p: (app / p).read_bytes() for p in files} == files

    for args, code, error in [
        (["af-nope"], 1, f"error: add: {h}/af-nope: no such package in {h}"),
        (["af-c@^1"], 1, "error: no version of af-c matches ^1: required by app@0.1.0 -> "
                         "af-c ^1 (available: 2.0.0)"),
        (["af-b"], 1, "error: package af-gone not found: required by app@0.1.0 -> "
                      "af-b@1.0.0 -> af-gone ^1"),
        (["af-c@^^1"], 2, "error: dependencies.af-c: version range '^^1': '^1' is not a version"),
        (["af-c:2.0.0"], 2, "error: add: af-c:2.0.0: a dependency takes a version range, "
                            "not a tag"),
        (["af-c", "--sha256", "00"], 2, "error: add: --sha256 is for a --url dependency"),
        (["@^1"], 2, "error: add: @^1: no package before the @"),
    ]:
        r = ebpm(capsys, "add", *args, "--allow-unsigned")
        assert r.code == code, (args, r.err)
        assert _stderr(r.err).startswith(error + "\n") and "\nhint: " in r.err, (args, r.err)
        assert r.out == "" and unchanged(), args

    r = ebpm(capsys, "add", "af-c", "--dry-run", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out == (f"added af-c ^2.0.0 ({h}/af-c)\nadded   {h}/af-c 2.0.0\n"
                     "ebpm.lock: 2 packages locked (dry run: not written)\n")
    assert _stderr(r.err) == "dry run: ebpm.toml and ebpm.lock left as they were\n"
    assert unchanged()

    # An ebpm.toml that does not parse, and no project at all: refused, nothing written.
    (app / "ebpm.toml").write_text(APP.format(first="af-a") + "[dependencies\n")
    r = ebpm(capsys, "add", "af-c", "--allow-unsigned")
    assert r.code == 1 and _stderr(r.err).startswith("error: ebpm.toml: "), r.err
    assert (app / "ebpm.toml").read_text().endswith("[dependencies\n")
    assert (app / "ebpm.lock").read_bytes() == files["ebpm.lock"]
    monkeypatch.chdir(tmp_path)
    for command in ("add", "remove"):
        r = ebpm(capsys, command, "af-c")
        assert (r.code, r.out) == (1, "") and r.err.startswith(
            f"error: no ebpm.toml in {tmp_path} or any parent directory\n"), r.err
        assert not (tmp_path / "ebpm.toml").exists() and not (tmp_path / "ebpm.lock").exists()


def test_remove_keeps_comments_and_the_rest_of_the_lock(
        env: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = env.host
    publish(env, {"rm-a": {"1.0.0": {}}, "rm-b": {"1.0.0": {"rm-c": "^1"}},
                  "rm-c": {"1.0.0": {}}, "rm-d": {"1.0.0": {}}})
    app = _app(tmp_path / "app", "rm-a", monkeypatch)
    text = APP.format(first="rm-a").replace(
        "\n# build settings follow\n",
        '# rm-b brings rm-c\nrm-b = "^1"\n\n[dependencies.rm-d]\nversion = "^1"  # a table\n\n'
        "# build settings follow\n")
    (app / "ebpm.toml").write_text(text)
    assert ebpm(capsys, "lock", "--allow-unsigned").code == 0
    publish(env, {"rm-a": {"1.1.0": {}}})  # not taken: remove moves nothing else

    r = ebpm(capsys, "remove", "rm-b", "rm-d", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out == (f"removed rm-b ^1 ({h}/rm-b)\nremoved rm-d ^1 ({h}/rm-d)\n"
                     f"removed {h}/rm-b 1.0.0\nremoved {h}/rm-c 1.0.0\nremoved {h}/rm-d 1.0.0\n"
                     "ebpm.lock: 1 package locked (written)\n")
    assert (app / "ebpm.toml").read_text() == APP.format(first="rm-a").replace(
        "\n# build settings follow\n", "# rm-b brings rm-c\n\n# build settings follow\n")
    assert _versions(app) == {f"{h}/rm-a": "1.0.0"}
    assert ebpm(capsys, "install", "--locked", "--allow-unsigned").code == 0

    files = {p: (app / p).read_bytes() for p in ("ebpm.toml", "ebpm.lock")}
    r = ebpm(capsys, "remove", "rm-a", "nope", "--allow-unsigned")
    assert (r.code, r.out) == (2, "")
    assert _stderr(r.err) == (f"error: remove: 'nope' is not a dependency in {Path('ebpm.toml')}\n"
                     "hint: it declares: rm-a\n")
    assert {p: (app / p).read_bytes() for p in files} == files


def test_add_offline_from_the_store_and_a_path_dependency(
        env: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = env.host
    publish(env, {"ao-a": {"1.0.0": {}}, "ao-b": {"1.0.0": {}, "1.2.0+b.7": {}}})
    assert ebpm(capsys, "init", "near", "--dir", str(tmp_path / "src" / "near")).code == 0
    app = _app(tmp_path / "app", "ao-a", monkeypatch)
    r = ebpm(capsys, "add", "ao-b", "--allow-unsigned")
    assert r.code == 0 and r.out.startswith(f"added ao-b ^1.2.0 ({h}/ao-b)\n"), r.err
    assert ebpm(capsys, "remove", "ao-b", "--allow-unsigned").code == 0
    assert "ao-b" not in (app / "ebpm.toml").read_text()

    # offline: the newest version from the tag list the store cached, the package from it
    r = ebpm(capsys, "--offline", "add", "ao-b", "--allow-unsigned")
    assert r.code == 0 and r.out.startswith(f"added ao-b ^1.2.0 ({h}/ao-b)\n"), r.err
    monkeypatch.delenv("EBPM_OFFLINE", raising=False)

    # --path is relative to the working directory, written relative to ebpm.toml
    monkeypatch.chdir(tmp_path)
    r = ebpm(capsys, "add", "-C", "app", "--path", "src/near", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out.startswith("added near path ../src/near\n"), r.out
    assert 'near = { path = "../src/near" }\n' in (app / "ebpm.toml").read_text()
    assert Lockfile.load(app / "ebpm.lock").get("path:../src/near") is not None


def test_a_crlf_manifest_stays_crlf(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An ebpm.toml with Windows line endings gets its new lines with them too: add and remove
    leave no mixed line endings (tomlkit writes a new line with \\n)."""
    assert ebpm(capsys, "init", "near", "--dir", str(tmp_path / "near")).code == 0
    app = _app(tmp_path / "app", "cr-a", monkeypatch)
    text = (app / "ebpm.toml").read_bytes().replace(b'cr-a = "^1"    # the first one\n', b"")
    (app / "ebpm.toml").write_bytes(text.replace(b"\n", b"\r\n"))
    r = ebpm(capsys, "add", "--path", "../near", "--allow-unsigned")
    assert r.code == 0, r.err
    data = (app / "ebpm.toml").read_bytes()
    assert b'near = { path = "../near" }\r\n' in data
    assert data.count(b"\n") == data.count(b"\r\n")
    assert ebpm(capsys, "remove", "near", "--allow-unsigned").code == 0
    assert (app / "ebpm.toml").read_bytes() == text.replace(b"\n", b"\r\n")
