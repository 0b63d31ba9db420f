"""Path dependencies: their content digest (so an edit inside one marks the lock stale) and
their build at install.

The digest covers the files a build reads: everything under the package directory except its
build output (`.ebpm/`), hidden directories (`.git`, editor state) and lockfiles, in the form of
`ebpm.deps.git.tree_digest_of`, so a path package and the same files in git digest alike.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.deps.git import tree_digest_of

if TYPE_CHECKING:
    from ebpm.resolver.lockfile import Lockfile

__all__ = ["directory_digest", "stale_paths", "build_path"]

_SKIP_FILES = {"ebpm.lock"}
_SOURCE_STAMP = "source-digest"  # in the build directory: the digest the build was made from


def directory_digest(directory: str | Path) -> str:
    """sha256 over the package directory's source files (see the module docstring)."""
    root = Path(directory)
    entries: list[tuple[str, bytes, str]] = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(current)
        for name in sorted(files):
            if name in _SKIP_FILES or name.startswith("."):
                continue
            path = base / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries.append(("120000", os.readlink(path).encode(), rel))
            elif stat.S_ISREG(info.st_mode):
                mode = "100755" if info.st_mode & 0o111 else "100644"
                entries.append((mode, path.read_bytes(), rel))
    return tree_digest_of(entries)


def stale_paths(lockfile: Lockfile, root: str | Path) -> list[str]:
    """The path packages of the lock whose files changed since it was written."""
    out = []
    for entry in lockfile.packages:
        if entry.kind != "path" or not entry.tree:
            continue
        target = Path(root) / entry.path
        if not target.is_dir() or directory_digest(target) != entry.tree:
            out.append(entry.path)
    return out


def build_path(directory: str | Path) -> bool:
    """Build a path package when it has a source and its build is missing or was made from
    other files (`ebpm build`); True when it built. The build records the digest of the files
    it was made from (`.ebpm/source-digest`), so an edit anywhere in the package (a header in
    a subdirectory, a file restored with an old mtime) is rebuilt."""
    from ebpm.build.builder import build
    from ebpm.files import atomic_write
    from ebpm.package import BUILD_DIR, CONFIG_FILE, ProjectManifest

    root = Path(directory)
    manifest = ProjectManifest.load(root)
    source = root / str(manifest.build.get("source") or f"{manifest.name}.bpf.c")
    if not source.is_file():
        return False  # nothing to compile (a package of dependencies only)
    digest = directory_digest(root)
    stamp = root / BUILD_DIR / _SOURCE_STAMP
    if (root / BUILD_DIR / CONFIG_FILE).is_file() and stamp.is_file() and \
            stamp.read_text().strip() == digest:
        return False
    build(root)
    atomic_write(stamp, f"{digest}\n".encode())
    return True
