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


def _synced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, count: int,
            syncfs: bool) -> list[Path]:
    """The directories sync_files fsyncs for `count` files written without fsync in two
    directories of tmp_path, syncfs(2) working or not."""
    import ebpm.files as files

    fsynced: list[Path] = []
    monkeypatch.setattr(files, "fsync_dir", lambda d: fsynced.append(Path(d)))
    if not syncfs:
        monkeypatch.setattr(files, "_syncfs", lambda root: False)
    paths = []
    for i in range(count):
        path = tmp_path / ("a" if i % 2 else "b") / f"{i}"
        atomic_write(path, b"x", durable=False)
        paths.append(path)
    files.sync_files(paths, root=tmp_path)
    return fsynced


def test_a_syncfs_makes_the_directories_durable_too(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """After a syncfs of the store's file system, no directory is fsynced again (the renames
    were written back with it); a few files, or no syncfs: each file and directory fsynced."""
    assert _synced(monkeypatch, tmp_path, 12, syncfs=True) == []
    assert _synced(monkeypatch, tmp_path / "few", 4, syncfs=True) == [
        tmp_path / "few" / "a", tmp_path / "few" / "b"]
    assert _synced(monkeypatch, tmp_path / "no", 12, syncfs=False) == [
        tmp_path / "no" / "a", tmp_path / "no" / "b"]
