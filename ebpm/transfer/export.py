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
    """Write config.json and each layer by its title into `directory`; returns the paths.

    Every name is checked before anything is written: a plain file name, unique, not
    `config.json` (ebpm's own), and not a symlink already in `directory` (nothing is written
    through a link, nor outside the directory)."""
    from ebpm.files import atomic_write
    from ebpm.oci.layout import Store

    store = Store()
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    items = [("config.json", package.manifest.config)] + [
        (layer.title or _untitled(package, layer.media_type), layer)
        for layer in package.manifest.layers
    ]
    plan = []
    seen: set[str] = set()
    for title, desc in items:
        name = safe_title(title)
        if name in seen:
            raise ManifestError(
                f"layer title {title!r} would overwrite "
                f"{'config.json (the package metadata)' if name == 'config.json' else name}",
                hint="the package is malformed or hostile; nothing was written",
            )
        seen.add(name)
        link = root / name
        if link.is_symlink():
            raise ManifestError(
                f"{link} is a symlink (to {link.readlink()}); refusing to write through it",
                hint="pull into an empty directory; nothing was written",
            )
        target = link.resolve()
        if target.parent != root:
            raise ManifestError(f"layer title {title!r} escapes {root}")
        plan.append((target, desc))
    written = []
    for target, desc in plan:
        atomic_write(target, store.read_blob(desc.digest, size=desc.size), to_invoker=True)
        written.append(target)
    return written


def _untitled(package: PulledPackage, media_type: str) -> str:
    """A file name for a layer without a title (ecli's wasm images): NAME plus the suffix
    its media type implies."""
    from ebpm.oci.model import BPF_OBJECT_TYPE, BTF_TYPE, README_TYPE, WASM_TYPE
    from ebpm.transfer.formats import WASM_IMAGE_LAYER_TYPE

    suffix = {WASM_TYPE: ".wasm", WASM_IMAGE_LAYER_TYPE: ".wasm", BPF_OBJECT_TYPE: ".bpf.o",
              BTF_TYPE: ".btf", README_TYPE: ".md"}.get(media_type, ".bin")
    return package.config.name + suffix
