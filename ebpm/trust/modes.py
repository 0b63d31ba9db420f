"""File modes checked as ssh checks them before trusting a file: a private key that others may
read is refused; a policy file or a trusted key that others may write (or replace, through a
directory they may write) is refused, as is one owned by another user."""

from __future__ import annotations

import os
import stat

from ebpm.errors import PolicyError, SignatureError

__all__ = ["check_private_key", "check_trusted_file"]


def _owners() -> set[int]:
    """Who may own what we trust: us, root, and under sudo the invoking user."""
    owners = {os.geteuid(), 0}
    sudo_uid = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo_uid.isdigit():
        owners.add(int(sudo_uid))
    return owners


def _directories(path: str | os.PathLike[str]) -> list[str]:
    """The directories above `path` once resolved (`Path(path).resolve().parents`; os.path: a
    pull imports no pathlib, see ebpm.config)."""
    directories, current = [], os.path.realpath(path)
    while (parent := os.path.dirname(current)) != current:
        directories.append(parent)
        current = parent
    return directories


def _unsafe_directory(path: str | os.PathLike[str]) -> tuple[str, int] | None:
    """The first directory above `path` that others may write to (without the sticky bit that
    keeps them from replacing our file)."""
    for directory in _directories(path):
        try:
            st = os.stat(directory)
        except OSError:
            continue
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            return directory, st.st_mode
    return None


def check_private_key(path: str | os.PathLike[str]) -> None:
    """Refuse a private key that group or others may read or write (ssh: "UNPROTECTED PRIVATE
    KEY FILE"), one owned by another user, or one in a directory others may write."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SignatureError(
            f"private key {path}: mode {mode:04o} lets others read it; refusing to use it",
            hint=f"`chmod 600 {path}` (and consider the key compromised if others could read it)",
        )
    _check_common(path, st, "private key", SignatureError)


def check_trusted_file(path: str | os.PathLike[str], what: str) -> None:
    """Refuse a policy file or trusted key that group or others may write, that another user
    owns, or that sits in a directory others may write to."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise PolicyError(
            f"{what} {path}: mode {mode:04o} lets others change it; refusing to trust it",
            hint=f"`chmod go-w {path}`",
        )
    _check_common(path, st, what, PolicyError)


def _check_common(path: str | os.PathLike[str], st: os.stat_result, what: str,
                  error: type[PolicyError] | type[SignatureError]) -> None:
    if st.st_uid not in _owners():
        raise error(f"{what} {path}: owned by uid {st.st_uid}, not by you or root",
                    hint=f"`chown {os.geteuid()} {path}` if you trust it")
    unsafe = _unsafe_directory(path)
    if unsafe is not None:
        directory, mode = unsafe
        raise error(
            f"{what} {path}: its directory {directory} (mode {stat.S_IMODE(mode):04o}) lets "
            "others replace it",
            hint=f"`chmod o-w {directory}`",
        )
