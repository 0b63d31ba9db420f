"""`ebpm save --locked`: everything ebpm.lock pins, as one archive for an air-gapped machine
(`ebpm load` there, then `ebpm install --frozen --offline`, with no registry and no git server).

- registry packages: by their pinned digest, with their signatures (checked against the trust
  policy when saved and again when loaded);
- git packages: the store's build of the locked commit (the manifest the lock's digest names);
- url dependencies: the fetched file (the blob the lock's sha256 names).

Git builds and url files are saved and loaded *unnamed*: only the digests in the project's
ebpm.lock make them packages at install, so an archive cannot pass off a build as a commit's.
Path dependencies are not saved: they are files of the project (the lock pins their content
digest), so they travel with it, and `install` builds them there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

__all__ = ["SavedLock", "save_locked"]


@dataclass(frozen=True)
class SavedLock:
    saved: tuple[str, ...]  # registry packages written (store names)
    pinned: tuple[str, ...]  # git builds and url files written (labels)
    paths: tuple[str, ...]  # path packages, which travel with the project (not saved)


def save_locked(directory: str | Path, output: str | Path, *,
                allow_unsigned: bool = False) -> SavedLock:
    """Save everything the project's ebpm.lock pins (the store must hold it: `ebpm install`
    first), registry packages checked against the trust policy."""
    from ebpm.transfer.archive import Pinned, save

    lockfile = Lockfile.load(Path(directory) / LOCK_FILE)
    refs: list[str] = []
    pinned: dict[str, Pinned] = {}
    paths: list[str] = []
    for entry in lockfile.packages:
        if entry.kind == "registry":
            ref = f"{entry.package}:{entry.tag}@{entry.manifest_digest}"
            if ref not in refs:
                refs.append(ref)
        elif entry.kind == "git":
            where = f"{entry.url}{'#' + entry.subdir if entry.subdir else ''}"
            label = f"git {where}@{entry.commit[:12]}"
            pinned.setdefault(entry.manifest_digest, Pinned(label, entry.manifest_digest))
        elif entry.kind == "url":
            digest = f"sha256:{entry.sha256}"
            pinned.setdefault(digest, Pinned(f"url {entry.url}", digest, file=True))
        elif entry.path not in paths:
            paths.append(entry.path)
    if not refs and not pinned:
        from ebpm.errors import UsageError

        raise UsageError(f"save --locked: {LOCK_FILE} names no package to save",
                         hint="path dependencies travel with the project's files")
    names = save(refs, Path(output), allow_unsigned=allow_unsigned,
                 pinned=tuple(pinned.values()))
    return SavedLock(tuple(names), tuple(p.label for p in pinned.values()), tuple(paths))
