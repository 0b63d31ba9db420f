"""`ebpm tree`: the locked dependency graph as indented lines (no network)."""

from __future__ import annotations

from pathlib import Path

from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

__all__ = ["tree"]


def tree(directory: str | Path = ".") -> list[str]:
    """The locked graph as indented lines: `name version (id)`, repeats marked."""
    from ebpm import config
    from ebpm.package import ProjectManifest
    from ebpm.resolver.tree import tree_lines

    root = Path(directory)
    lockfile = Lockfile.load(root / LOCK_FILE)
    label = root.name
    if (root / "ebpm.toml").exists():
        manifest = ProjectManifest.load(root)
        label = f"{manifest.name} {manifest.version}"
    return tree_lines(lockfile, label, registry=config.default_registry())
