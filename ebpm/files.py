"""Atomic file writes: a reader sees the old file or the new one, never a part, even after a crash.
(And `read_bytes`, a whole file read by its str path, as `Path.read_bytes` without pathlib.)

The one way ebpm replaces a file: a temp file in the same directory (created with the final
mode, so a secret is never readable by others), written, fsynced, renamed over the target, and
the directory fsynced so the rename itself is durable.

Paths are strings or path-likes, handled with `os.path` (a cold pull imports no `pathlib`:
see `ebpm.config`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["atomic_write", "atomic_path", "atomic_move", "give_to_invoker", "fsync_dir",
           "sync_files", "read_bytes", "FILE_MODE",
           "PRIVATE_MODE", "PRIVATE_DIR_MODE"]

FILE_MODE = 0o644  # what others may read (the store, ebpm.lock, build outputs)
PRIVATE_MODE = 0o600  # secrets and caches only we may read
PRIVATE_DIR_MODE = 0o700  # a directory of secrets


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole file at `path` (`Path(path).read_bytes()`)."""
    with open(path, "rb") as fh:
        return fh.read()


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = FILE_MODE,
                 dir_mode: int | None = None, to_invoker: bool = False,
                 durable: bool = True) -> None:
    """Replace `path` with `data` (str is written as UTF-8) atomically and durably.

    The parent directory is created when missing (with `dir_mode`, else the umask's default).
    `to_invoker`: under sudo, the file then belongs to the invoking user (see give_to_invoker).
    `durable=False`: atomic only (no fsync); the caller makes a batch durable at once (the
    store's `batch()`, before an index names the files).
    """
    path = os.fspath(path)
    fd, tmp = _temp(path, mode, dir_mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if durable:
        fsync_dir(_parent(path))
    if to_invoker:
        give_to_invoker(path)


def give_to_invoker(path: str | os.PathLike[str]) -> None:
    """Under sudo, hand a file back to the invoking user so their own ebpm can use it."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if os.geteuid() == 0 and uid and gid:
        with contextlib.suppress(OSError, ValueError):
            os.chown(path, int(uid), int(gid))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int = FILE_MODE,
                dir_mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path` to fill (by any means, e.g. a tool's stdout); when the
    block ends without an error it is fsynced and renamed over `path`, else removed."""
    from pathlib import Path

    path = os.fspath(path)
    fd, tmp = _temp(path, mode, dir_mode)
    os.close(fd)
    try:
        yield Path(tmp)
        atomic_move(tmp, path, mode=mode)
    except BaseException:
        _unlink(tmp)
        raise


def atomic_move(source: str | os.PathLike[str], path: str | os.PathLike[str], *,
                mode: int = FILE_MODE,
                to_invoker: bool = False, durable: bool = True) -> None:
    """Put the finished file `source` (on the same filesystem) in place of `path`: fsync it,
    give it `mode`, rename it over `path`, fsync the directory (`durable=False`: no fsync,
    the caller flushes a batch at once, as for atomic_write)."""
    path = os.fspath(path)
    if durable:
        with open(source, "rb") as fh:
            os.fsync(fh.fileno())
    os.chmod(source, mode)  # whoever filled it may have recreated it
    os.replace(source, path)
    if durable:
        fsync_dir(_parent(path))
    if to_invoker:
        give_to_invoker(path)


def _parent(path: str) -> str:
    """The directory holding `path` (`Path(path).parent`: "." for a bare name)."""
    return os.path.dirname(path.rstrip("/") or "/") or "."


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _temp(path: str, mode: int, dir_mode: int | None) -> tuple[int, str]:
    """An open temp file beside `path`, already with `mode` (mkstemp creates it 0600)."""
    parent = _parent(path)
    os.makedirs(parent, 0o777 if dir_mode is None else dir_mode, exist_ok=True)
    fd, name = _create_unique(parent, f".{os.path.basename(path.rstrip('/'))}.", ".tmp")
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, name


def _create_unique(directory: str, prefix: str, suffix: str) -> tuple[int, str]:
    """What tempfile.mkstemp does (a new file, 0600, O_EXCL, close-on-exec), without importing
    tempfile (which brings shutil, lzma and bz2 into every command that writes a file)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        name = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no unique temp name in {directory}")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in `directory` durable (not every file system allows it: best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths: list[str], *, root: str, many: int = 8) -> None:
    """Make files written with `durable=False` durable, and the renames that named them: fsync
    each of a few, then their directories; or one syncfs(2) of the file system holding `root`
    for many (one flush instead of one per file and directory). Every one of `paths` must be
    in place (renamed) before this call. Files removed meanwhile are skipped."""
    directories = sorted({_parent(os.fspath(p)) for p in paths})
    if len(paths) > many and _syncfs(root):
        # syncfs wrote back every dirty inode and block of root's file system, directories'
        # included: the renames made before it are durable, a directory fsync after it would
        # only flush the device again (1-7 ms at an install's end). A directory on another
        # file system (something mounted inside the store) is fsynced still.
        device = os.stat(root).st_dev
        directories = [d for d in directories if _device(d) != device]
    else:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in directories:
        fsync_dir(directory)


def _device(directory: str) -> int | None:
    try:
        return os.stat(directory).st_dev
    except OSError:  # gone meanwhile: nothing in it to make durable
        return None


def _syncfs(root: str) -> bool:
    """syncfs(2) on the file system of `root` (through libc: the stdlib has no binding)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except (OSError, AttributeError):
        return False
    try:
        return bool(libc.syncfs(fd) == 0)
    except AttributeError:
        return False
    finally:
        os.close(fd)
