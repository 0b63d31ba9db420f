"""`ebpm save --locked`: everything ebpm.lock pins, as one archive for an air-gapped machine
(`ebpm load` there, then `ebpm install --frozen --offline`, with no registry and no git server).

- registry packages: by their pinned digest, with their signatures (checked against the trust
  policy when saved and again when loaded);
- git packages: the store's build of the locked commit (the manifest the lock's digest names),
  and the commit with its history as a git bundle (so the other machine can re-lock and rebuild
  offline: `ebpm load` puts it in the store's copy of the repository);
- url dependencies: the fetched file (the blob the lock's sha256 names).

Git builds and url files are saved and loaded *unnamed*: only the digests in the project's
ebpm.lock make them packages at install, so an archive cannot pass off a build as a commit's.
Path dependencies are not saved: they are files of the project (the lock pins their content
digest), so they travel with it, and `install` builds them there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

if TYPE_CHECKING:
    from ebpm.oci.layout import Store
    from ebpm.transfer.archive import LoadedPackage, Pinned

__all__ = ["SavedLock", "save_locked", "adopt_git_objects", "GIT_BUNDLE_TYPE"]

GIT_BUNDLE_TYPE = "application/vnd.ebpm.git-bundle.v1"
_URL, _COMMIT = "dev.ebpm.git.url", "dev.ebpm.git.commit"


@dataclass(frozen=True)
class SavedLock:
    saved: tuple[str, ...]  # registry packages written (store names)
    pinned: tuple[str, ...]  # git builds and url files written (labels)
    paths: tuple[str, ...]  # path packages, which travel with the project (not saved)


def save_locked(directory: str | Path, output: str | Path, *,
                allow_unsigned: bool = False) -> SavedLock:
    """Save everything the project's ebpm.lock pins (the store must hold it: `ebpm install`
    first), registry packages checked against the trust policy."""
    from ebpm.oci.layout import Store
    from ebpm.transfer.archive import Pinned, save

    store = Store()
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
            objects = _git_objects(store, entry.url, entry.commit, where)
            if objects is not None:
                pinned.setdefault(objects.digest, objects)
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


def _git_objects(store: Store, url: str, commit: str, where: str) -> Pinned | None:
    """The store's copy of `commit` (with its history) as a pinned bundle, or None when the
    store has no copy of it (a build loaded from an archive travels without)."""
    from ebpm.deps.git import GitRepo
    from ebpm.digests import sha256_digest
    from ebpm.oci.model import TITLE
    from ebpm.transfer.archive import Pinned

    repo = GitRepo(store.root, url, offline=True)
    if not repo.has_commit(commit):
        return None
    data = repo.bundle(commit)
    digest = sha256_digest(data)
    return Pinned(f"git objects {where}@{commit[:12]}", digest, file=True, data=data,
                  artifact_type=GIT_BUNDLE_TYPE,
                  annotations=((TITLE, f"{commit}.bundle"), (_URL, url), (_COMMIT, commit)))


def adopt_git_objects(loaded: list[LoadedPackage]) -> set[str]:
    """After `ebpm load`: put the git bundles among the pinned entries into the store's copies
    of their repositories; returns the digests of the entries adopted."""
    from ebpm.deps.git import GitRepo
    from ebpm.oci.layout import Store

    store = Store()
    out: set[str] = set()
    for item in loaded:
        if item.verification is not None:
            continue
        _, manifest = store.read_manifest(item.digest)
        if manifest.artifact_type != GIT_BUNDLE_TYPE or len(manifest.layers) != 1:
            continue
        layer = manifest.layers[0]
        url, commit = layer.annotations.get(_URL, ""), layer.annotations.get(_COMMIT, "")
        if url and commit and GitRepo(store.root, url, offline=True).adopt(
                Path(store.blob_path(layer.digest)), commit):
            out.add(item.digest)
    return out
