"""Write a pulled package's layers as files, by title, strictly inside one directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.errors import ManifestError
from ebpm.oci.artifact import safe_title

if TYPE_CHECKING:
    from ebpm.transfer.pull import PulledPackage

__all__ = ["export"]


def export(package: PulledPackage, directory: Path) -> list[Path]:
    """Write config.json and each layer by its title into `directory`; returns the paths."""
    from ebpm.files import atomic_write
    from ebpm.oci.layout import Store

    store = Store()
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    written = []
    items = [("config.json", package.manifest.config)] + [
        (layer.title, layer) for layer in package.manifest.layers
    ]
    for title, desc in items:
        target = (root / safe_title(title)).resolve()
        if target.parent != root:
            raise ManifestError(f"layer title {title!r} escapes {root}")
        atomic_write(target, store.read_blob(desc.digest, size=desc.size), to_invoker=True)
        written.append(target)
    return written
