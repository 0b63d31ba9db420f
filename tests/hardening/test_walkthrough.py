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
    assert r.code == 2 and r.err.splitlines() == [
        f"error: load {text}: not a readable tar archive (file could not be opened "
        "successfully)",
        "hint: give an archive `ebpm save` wrote (an OCI image layout as a tar)"]
    _clean(r.err)
