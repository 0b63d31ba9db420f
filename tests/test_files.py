"""The one atomic write: whole files or nothing, with the mode asked for."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ebpm.files import PRIVATE_MODE, atomic_path, atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_replace_and_modes(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "f.json"
    atomic_write(target, b"one")
    assert target.read_bytes() == b"one" and _mode(target) == 0o644
    atomic_write(target, "two")
    assert target.read_text() == "two"
    secret = tmp_path / "private" / "auth.json"
    atomic_write(secret, b"s", mode=PRIVATE_MODE, dir_mode=0o700)
    assert _mode(secret) == 0o600 and _mode(secret.parent) == 0o700
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temp file left


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "vmlinux.h"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the tool failed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _mode(target) == 0o644


def test_move_a_finished_file_into_place(tmp_path: Path) -> None:
    from ebpm.files import atomic_move

    staged = tmp_path / ".staging" / "blob"
    staged.parent.mkdir()
    staged.write_bytes(b"content")
    target = tmp_path / "blobs" / "abc"
    target.parent.mkdir()
    target.write_bytes(b"old")
    atomic_move(staged, target, mode=0o444)
    assert target.read_bytes() == b"content" and _mode(target) == 0o444 and not staged.exists()
