"""`ebpm save --locked`: the registry packages ebpm.lock pins, by digest and with their
signatures, as one archive for an air-gapped machine (`ebpm load` there, then
`ebpm install --frozen --offline`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

__all__ = ["SavedLock", "save_locked"]


@dataclass(frozen=True)
class SavedLock:
    saved: tuple[str, ...]  # store names written to the archive
    skipped: tuple[str, ...]  # lock keys not saved (git, url, path: see `save_locked`)


def save_locked(directory: str | Path, output: str | Path, *,
                allow_unsigned: bool = False) -> SavedLock:
    """Save every registry package of the project's ebpm.lock, each at its pinned digest (the
    store must hold it: `ebpm install` first) and checked against the trust policy.

    Git, url and path entries are not registry artifacts: they are listed in `skipped` (a git
    package is rebuilt from its repository, a url object fetched by its sha256)."""
    from ebpm.transfer.archive import save

    lockfile = Lockfile.load(Path(directory) / LOCK_FILE)
    refs = []
    seen = set()
    skipped = []
    for entry in lockfile.packages:
        if entry.kind != "registry":
            skipped.append(entry.key)
            continue
        ref = f"{entry.package}:{entry.tag}@{entry.manifest_digest}"
        if ref not in seen:
            seen.add(ref)
            refs.append(ref)
    if not refs:
        from ebpm.errors import UsageError

        raise UsageError(f"save --locked: {LOCK_FILE} names no registry package",
                         hint="git, url and path dependencies are not saved")
    names = save(refs, Path(output), allow_unsigned=allow_unsigned)
    return SavedLock(tuple(names), tuple(skipped))
