"""Turn a built package directory (or a bare `.bpf.o`) into an artifact ready to push."""

from __future__ import annotations

import os
from pathlib import Path

from ebpm.errors import BuildError, ManifestError, UsageError
from ebpm.oci.artifact import Artifact, Layer, created_from_epoch, pack
from ebpm.oci.model import BPF_OBJECT_TYPE, BTF_TYPE, README_TYPE, WASM_TYPE
from ebpm.package import BUILD_DIR, CONFIG_FILE, MANIFEST_FILE, PackageConfig, ProjectManifest
from ebpm.record import replace

__all__ = ["pack_path", "annotations_for"]



def annotations_for(config: PackageConfig, *, revision: str = "") -> dict[str, str]:
    """The manifest's org.opencontainers.image.* annotations; `created` only from
    SOURCE_DATE_EPOCH, so the same sources give the same digest."""
    prefix = "org.opencontainers.image."
    return {
        prefix + "version": config.version,
        prefix + "description": config.description,
        prefix + "source": config.source,
        prefix + "revision": revision,
        prefix + "licenses": config.license,
        prefix + "authors": ", ".join(config.authors),
        prefix + "created": created_from_epoch(os.environ.get("SOURCE_DATE_EPOCH")),
    }


def _bare_file(path: Path, version: str | None) -> tuple[PackageConfig, list[Layer]]:
    """A file as a package, by what its bytes are: a `.bpf.o` (with NAME.btf beside it, as
    `ebpm run` reads it), a wasm-bpf module (a wasm package, no object layer), or an eunomia
    package.json (its object, with `meta` as the config)."""
    from ebpm.transfer.formats import BPF_OBJECT, WASM, package_name, raw_btf, unpack, wasm_config

    data = path.read_bytes()
    stem = path.parent.name if path.name == "package.json" else path.name
    name = package_name(stem.removesuffix(".o").removesuffix(".bpf"))
    version = version or "0.0.0"
    unpacked = unpack(data, where=str(path), name=name, version=version)
    if unpacked.format == WASM:
        assert unpacked.wasm is not None
        config = wasm_config(unpacked.wasm, name=name, version=version)
        return config, [Layer(WASM_TYPE, f"{name}.wasm", unpacked.wasm)]
    assert unpacked.object is not None
    from ebpm.build.metadata import extract_given

    btf = None
    if unpacked.format == BPF_OBJECT:
        sidecar = path.with_name(path.name.removesuffix(".o").removesuffix(".bpf") + ".btf")
        btf = raw_btf(sidecar.read_bytes(), where=str(sidecar)) if sidecar.is_file() else None
        config = replace(extract_given(data, where=str(path), sidecar_btf=btf), name=name,
                         version=version)
    else:
        config = unpacked.config
    layers = [Layer(BPF_OBJECT_TYPE, f"{name}.bpf.o", unpacked.object)]
    if btf is not None:
        layers.append(Layer(BTF_TYPE, f"{name}.btf", btf))
    return config, layers


def _directory(root: Path) -> tuple[PackageConfig, list[Layer]]:
    manifest = ProjectManifest.load(root)
    build = root / BUILD_DIR
    config_path = build / CONFIG_FILE
    if not config_path.is_file():
        raise BuildError(
            f"{root}: package is not built ({BUILD_DIR}/{CONFIG_FILE} is missing)",
            hint=f"run `ebpm build {root}` first, or `ebpm publish`",
        )
    built_at = config_path.stat().st_mtime
    newer = [
        p.name for p in root.iterdir()
        if p.is_file() and p.suffix in {".c", ".h", ".toml"} and p.stat().st_mtime > built_at
    ]
    if newer:
        raise BuildError(
            f"{root}: the build is older than {', '.join(sorted(newer))}",
            hint=f"run `ebpm build {root}` again",
        )
    config = PackageConfig.from_json(config_path.read_bytes())
    if (config.name, config.version) != (manifest.name, manifest.version):
        raise BuildError(
            f"{root}: built {config.name} {config.version} but {MANIFEST_FILE} says "
            f"{manifest.name} {manifest.version}",
            hint=f"run `ebpm build {root}` again",
        )
    layers = []
    for suffix, media_type, required in (
        (".bpf.o", BPF_OBJECT_TYPE, True),
        (".btf", BTF_TYPE, False),
        (".wasm", WASM_TYPE, False),
    ):
        path = build / f"{config.name}{suffix}"
        if path.is_file():
            layers.append(Layer(media_type, path.name, path.read_bytes()))
        elif required:
            raise BuildError(f"{path}: missing", hint=f"run `ebpm build {root}` again")
    readme = manifest.readme_file()
    if readme is not None:
        if not readme.resolve().is_relative_to(root.resolve()):
            raise BuildError(
                f"{readme}: the README leads outside the package directory "
                f"({readme.resolve()}); refusing to publish it",
                hint="copy the file into the package instead of linking to it",
            )
        layers.append(Layer(README_TYPE, "README.md", readme.read_bytes()))
    return config, layers


def pack_path(path: str | Path, *, version: str | None = None, revision: str = "") -> Artifact:
    """Pack a package directory (ebpm.toml + .ebpm/) or a file (a `.bpf.o`, a wasm-bpf module,
    an eunomia package.json) into an artifact.

    `version` names the version of a bare object (from the tag it is pushed to)."""
    target = Path(path)
    if target.is_dir():
        config, layers = _directory(target)
    elif target.is_file():
        config, layers = _bare_file(target, version)
    else:
        raise UsageError(f"{target}: no such file or directory")
    try:
        config_json = config.to_json()
        PackageConfig.from_json(config_json)  # what we publish must read back
    except ManifestError as err:
        raise BuildError(f"{target}: invalid package metadata: {err}") from err
    return pack(config_json, layers, annotations=annotations_for(config, revision=revision))
