"""What a new user typed next while walking through the README and docs/ (session 'polish'):
each answer is one error line with its way out and a non-zero status."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import ebpm


def _clean(err: str) -> None:
    assert "unexpected" not in err and "report it" not in err and "Traceback" not in err


def test_push_of_a_directory_without_a_reference(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`ebpm push opensnoop` beside the package directory: was "ebpm.toml: no ebpm.toml here"
    (the directory taken for a short reference, the package looked for in .)."""
    (tmp_path / "opensnoop").mkdir()
    (tmp_path / "opensnoop" / "ebpm.toml").write_text("[package]\nname = 'opensnoop'\n")
    monkeypatch.chdir(tmp_path)
    r = ebpm(capsys, "push", "opensnoop")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines()[-1] == (
        "Error: push opensnoop: where to? 'opensnoop' is a file or directory here, not a "
        "reference; give both: ebpm push opensnoop REF")
    # arguments swapped: the way round is named
    r = ebpm(capsys, "push", "localhost:5000/tools/opensnoop:0.1.0", "opensnoop")
    assert r.code == 2 and r.err.splitlines()[-1] == (
        "Error: Invalid value for PATH: 'localhost:5000/tools/opensnoop:0.1.0' does not exist "
        "(PATH comes first: ebpm push PATH REF)")


def test_load_of_a_file_that_is_no_archive(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    """Was three lines of tarfile's attempts ("- method gz: ReadError(...)")."""
    text = tmp_path / "notes.txt"
    text.write_text("not a tar\n" * 100)
    r = ebpm(capsys, "load", str(text))
    assert r.code == 1 and r.err.splitlines() == [
        f"error: load {text}: not a tar archive (plain, gzip, bzip2 or xz)",
        "hint: give an archive `ebpm save` wrote (an OCI image layout as a tar)"]
    _clean(r.err)


def test_key_generate_with_an_empty_password_on_stdin(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      ebpm_env: Path) -> None:
    """`echo "$UNSET" | ebpm key generate --password-stdin` wrote a key with no password."""
    import io
    import os

    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    r = ebpm(capsys, "key", "generate", "--name", "ci", "--password-stdin")
    assert r.code == 2 and r.err.splitlines() == [
        "error: key generate --password-stdin: stdin held no password",
        "hint: pipe one in (printf '%s\\n' \"$PW\" | ebpm key generate --password-stdin), "
        "or leave the flag out for a key without one"]
    keys = Path(os.environ["EBPM_CONFIG"]) / "keys"
    assert not (keys / "ci.key").exists()
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    r = ebpm(capsys, "key", "generate", "--name", "ci", "--password-stdin")
    assert r.code == 0 and "ENCRYPTED" in (keys / "ci.key").read_text()


def test_inspect_of_a_path(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`ebpm inspect ./opens` (as `ebpm run ./opens` works): was "invalid reference './opens':
    bad registry '.'"."""
    (tmp_path / "opens").mkdir()
    monkeypatch.chdir(tmp_path)
    r = ebpm(capsys, "inspect", "./opens")
    assert r.code == 2 and r.err.splitlines() == [
        "error: inspect ./opens: a file or directory here; inspect reads a registry or store "
        "reference",
        "hint: `ebpm build DIR --json` shows a package directory's metadata; "
        "`ebpm run PATH -- -h` a program's flags"]


def test_a_tag_that_is_not_there_names_the_command_that_lists_them(
        capsys: pytest.CaptureFixture[str], registry, hello_object: Path) -> None:
    """`ebpm pull tools/hello:v1.0.0` (helm's and git's 'v'): the hint names the repository's
    own `ebpm tags` line and how tags are spelled, not `ebpm tags REPO`."""
    assert ebpm(capsys, "push", str(hello_object), f"{registry.host}/walk/hello:1.0.0").code == 0
    r = ebpm(capsys, "pull", "--allow-unsigned", f"{registry.host}/walk/hello:v1.0.0")
    assert r.code == 1 and r.err.splitlines()[-2:] == [
        f"error: {registry.host}/walk/hello:v1.0.0: 404 MANIFEST_UNKNOWN: manifest unknown",
        f"hint: `ebpm tags {registry.host}/walk/hello` lists its versions (tags are versions "
        "without a 'v', '+' written '_')"]


@pytest.mark.parametrize("command", [["init"], ["push"], ["export"], ["run"]])
def test_a_name_longer_than_the_file_system_takes(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  command: list[str]) -> None:
    """A 300-character argument where a file may be named: was "unexpected OSError: [Errno
    36] File name too long ... report it"."""
    monkeypatch.chdir(tmp_path)
    r = ebpm(capsys, *command, "x" * 300)
    assert r.code == 1 and r.err.splitlines() == [
        f"error: file name too long: {'x' * 300}",
        "hint: a file name is at most 255 bytes and a path 4096: shorten it"]


@pytest.mark.parametrize("command", [["export", "localhost:5000/t/x:1.0.0"],
                                     ["save", "localhost:5000/t/x:1.0.0"],
                                     ["hub", "build"], ["pull", "localhost:5000/t/x:1.0.0"]])
def test_an_empty_output_path(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """`-o ''` (an unset variable): export and save renamed their file over '.', "unexpected
    OSError: [Errno 16] Device or resource busy ... report it"."""
    monkeypatch.chdir(tmp_path)
    r = ebpm(capsys, *command, "-o", "")
    assert r.code == 2 and r.err.splitlines()[-1].endswith(
        "Invalid value for '-o' / '--output': an empty path names nothing to write")
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_directory_is_needed(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    """`ebpm init x --dir FILE/x`: the hint spoke only of EBPM_HOME and EBPM_CONFIG; the
    error names the file in the way, not the path that runs through it."""
    (tmp_path / "f").write_text("")
    r = ebpm(capsys, "init", "x", "--dir", str(tmp_path / "f" / "x"))
    assert r.code == 1 and r.err.splitlines() == [
        f"error: not a directory: {tmp_path / 'f'}",
        "hint: a file stands where a directory belongs: move it away, or give another path"]


def test_export_to_a_terminal(tmp_path: Path) -> None:
    """`ebpm export REF` at a prompt printed kilobytes of base64 (docker save refuses too);
    piped or with -o it writes as before."""
    import os
    import pty
    import subprocess
    import sys

    main, sub = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "ebpm", "export", "./nothing"],
                              stdin=subprocess.DEVNULL, stdout=sub, stderr=subprocess.PIPE,
                              text=True, timeout=60, cwd=tmp_path)
    finally:
        os.close(sub)
        os.close(main)
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1] == (
        "Error: export: the package.json would fill the terminal; name the file with "
        "-o package.json, or redirect it (> package.json)")


def test_install_of_a_package_name(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`ebpm install REF`, the cargo/helm/npm habit: was click's "Got unexpected extra argument"
    with no way out. Nothing is read or written."""
    monkeypatch.chdir(tmp_path)
    r = ebpm(capsys, "install", "localhost:5000/tools/opensnoop:0.1.0", "--frozen")
    assert r.code == 2 and r.out == "" and r.err.splitlines() == [
        "error: install takes no package (localhost:5000/tools/opensnoop:0.1.0): it installs "
        "the dependency graph of the project's ebpm.toml and ebpm.lock",
        "hint: fetch one package with `ebpm pull localhost:5000/tools/opensnoop:0.1.0`, or add "
        "it under [dependencies] in ebpm.toml and run `ebpm install`"]
    assert list(tmp_path.iterdir()) == []
    r = ebpm(capsys, "install", "--nosuch")  # an unknown option is still click's usage error
    assert r.code == 2 and "No such option '--nosuch'" in r.err
