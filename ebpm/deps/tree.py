"""`ebpm tree`: the locked dependency graph as indented lines (no network)."""

from __future__ import annotations

from pathlib import Path

from ebpm.resolver.lockfile import LOCK_FILE, Lockfile

__all__ = ["tree", "tree_json"]


def _load(directory: str | Path) -> tuple[Lockfile, str, str]:
    """The lock, and the project's name and version (without ebpm.toml: the directory's name,
    no version)."""
    from ebpm.package import ProjectManifest

    root = Path(directory)
    lockfile = Lockfile.load(root / LOCK_FILE)
    if (root / "ebpm.toml").exists():
        manifest = ProjectManifest.load(root)
        return lockfile, manifest.name, manifest.version
    return lockfile, root.resolve().name, ""


def tree(directory: str | Path = ".") -> list[str]:
    """The locked graph as indented lines: `name version (id)`, repeats marked."""
    from ebpm import config
    from ebpm.resolver.tree import tree_lines

    lockfile, name, version = _load(directory)
    label = f"{name} {version}" if version else name
    return tree_lines(lockfile, label, registry=config.default_registry())


def tree_json(directory: str | Path = ".") -> dict[str, object]:
    """The locked graph as nested dicts (`ebpm tree --json`)."""
    from ebpm.resolver.tree import tree_data

    lockfile, name, version = _load(directory)
    return tree_data(lockfile, name, version=version)
