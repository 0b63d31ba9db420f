"""Write a package in another ecosystem's format: `ebpm export --format eunomia` gives the
package.json that eunomia-bpf's ecli runs; `--format object` the bare BPF object."""

from __future__ import annotations

from ebpm.errors import UsageError
from ebpm.run.dispatch import open_target

__all__ = ["EXPORT_FORMATS", "export_package"]

EXPORT_FORMATS = ("eunomia", "object")


def export_package(target: str, *, fmt: str, allow_unsigned: bool = False) -> bytes:
    """TARGET (path, URL or registry reference) as the bytes of format `fmt`."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format {fmt}: not a format ebpm writes",
                         hint="formats: " + ", ".join(EXPORT_FORMATS))
    pkg = open_target(target, allow_unsigned=allow_unsigned)
    if pkg.object is None:
        raise UsageError(f"{target}: a wasm package: its module carries its own BPF object",
                         hint="ecli runs the .wasm module itself; `ebpm pull -o DIR` writes it")
    if fmt == "object":
        return pkg.object
    from ebpm.run.native import complete_config
    from ebpm.transfer.formats import to_eunomia

    return to_eunomia(pkg.object, complete_config(pkg))
