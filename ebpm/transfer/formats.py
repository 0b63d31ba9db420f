"""What a blob is: every package format ebpm reads, told apart by its bytes or media types.

`detect(data)` names the format of a file or download without looking at its name:

- `bpf-object`: an ELF object for the BPF machine (a bare `.bpf.o`);
- `wasm`: a WebAssembly module (a wasm-bpf userspace that embeds its own BPF object);
- `eunomia`: an eunomia-bpf package, the JSON `ecc` writes (`package.json` and its siblings:
  `bpf_object` = base64 of the zlib-compressed ELF, `bpf_object_size`, `meta`);
- `eunomia-skeleton`: eunomia's JSON skeleton without the object (not runnable by itself);
- `oci-manifest`: an OCI image manifest (a registry package written to disk).

`unpack(data, ...)` turns any runnable format into one `Unpacked` value (object, config, wasm),
and `manifest_format(config_media_type, layer_media_types)` tells an ebpm package from an ecli
wasm image (the oci-distribution crate's media types). Pure: bytes in, values out, no I/O.
What only JSON formats need (json, base64, zlib, re) is imported where they are read, so that
`ebpm run X.bpf.o` imports none of it before libbpf's load.
"""

from __future__ import annotations

from ebpm.errors import ManifestError, UsageError
from ebpm.package import ArgSpec, EventSpec, PackageConfig
from ebpm.record import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "BPF_OBJECT", "WASM", "EUNOMIA", "EUNOMIA_SKELETON", "OCI_MANIFEST", "UNKNOWN",
    "WASM_IMAGE_CONFIG_TYPE", "WASM_IMAGE_LAYER_TYPE", "Unpacked", "detect", "describe",
    "unpack", "embedded_object", "eunomia_object", "eunomia_config", "to_eunomia",
    "manifest_format", "package_name", "raw_btf", "wasm_config",
]

BPF_OBJECT = "bpf-object"
WASM = "wasm"
EUNOMIA = "eunomia"
EUNOMIA_SKELETON = "eunomia-skeleton"
OCI_MANIFEST = "oci-manifest"
UNKNOWN = "unknown"

# ecli pushes wasm modules with the media types of the oci-distribution crate (oci-wasm).
WASM_IMAGE_CONFIG_TYPE = "application/vnd.wasm.config.v1+json"
WASM_IMAGE_LAYER_TYPE = "application/vnd.wasm.content.layer.v1+wasm"

_EM_BPF = 247
_WASM_MAGIC = b"\0asm"
_ELF_MAGIC = b"\x7fELF"
_EUNOMIA_VERSION = "0.3.3"  # the ecc release whose package.json layout `to_eunomia` writes
_MAX_OBJECT = 64 << 20  # a package.json that inflates beyond this is refused

_DESCRIPTIONS = {
    BPF_OBJECT: "a BPF object",
    WASM: "a WebAssembly module",
    EUNOMIA: "an eunomia-bpf package.json",
    EUNOMIA_SKELETON: "an eunomia-bpf skeleton (no BPF object inside)",
    OCI_MANIFEST: "an OCI image manifest",
    UNKNOWN: "not a format ebpm runs",
}


@record
class Unpacked:
    """A runnable package from one blob: `object` is None for a bare wasm module."""

    format: str
    config: PackageConfig
    object: bytes | None = None
    wasm: bytes | None = None


def _is_bpf_elf(data: bytes) -> bool:
    if not data.startswith(_ELF_MAGIC) or len(data) < 20:
        return False
    if data[5:6] == b"\x01":
        return int.from_bytes(data[18:20], "little") == _EM_BPF
    return int.from_bytes(data[18:20], "big") == _EM_BPF


def _json(data: bytes) -> Any:
    head = data[:64].lstrip()
    if not head.startswith(b"{"):
        return None
    import json

    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def detect(data: bytes) -> str:
    """The format of `data`, from its bytes only (never a file name)."""
    if data.startswith(_WASM_MAGIC):
        return WASM
    if data.startswith(_ELF_MAGIC):
        return BPF_OBJECT if _is_bpf_elf(data) else UNKNOWN
    doc = _json(data)
    if not isinstance(doc, dict):
        return UNKNOWN
    if "bpf_object" in doc:
        return EUNOMIA
    if "bpf_skel" in doc or isinstance(doc.get("meta"), dict) and "bpf_skel" in doc["meta"]:
        return EUNOMIA_SKELETON
    if doc.get("schemaVersion") == 2 and "layers" in doc:
        return OCI_MANIFEST
    return UNKNOWN


def describe(fmt: str) -> str:
    return _DESCRIPTIONS.get(fmt, fmt)


def package_name(stem: str) -> str:
    """A valid package name from a file or URL stem (`execve.wasm` -> `execve`)."""
    for suffix in (".json", ".wasm", ".o", ".bpf", ".package", "-package"):
        stem = stem.removesuffix(suffix)
    out: list[str] = []  # each run of other characters as one "-" (no re: a bare object's run)
    for c in stem.lower():
        if "a" <= c <= "z" or "0" <= c <= "9":
            out.append(c)
        elif not out or out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-") or "package"


def manifest_format(config_media_type: str, layer_media_types: list[str]) -> str:
    """`ebpm` for ebpm packages, `wasm-image` for an ecli/oci-wasm image, else `unknown`."""
    from ebpm.oci.model import CONFIG_TYPE

    if config_media_type == CONFIG_TYPE:
        return "ebpm"
    if config_media_type == WASM_IMAGE_CONFIG_TYPE or (
        layer_media_types and all(t == WASM_IMAGE_LAYER_TYPE for t in layer_media_types)
    ):
        return "wasm-image"
    return "unknown"


# -- embedded objects --------------------------------------------------------------------------


def embedded_object(data: bytes) -> bytes | None:
    """The first complete BPF ELF object inside `data` (a wasm module's data section, or a
    libbpf skeleton binary), cut at the end of its section header table; None when absent."""
    at = data.find(_ELF_MAGIC)
    while at != -1:
        if len(data) >= at + 64 and data[at + 4] == 2 and data[at + 5] == 1 and int.from_bytes(
            data[at + 18 : at + 20], "little"
        ) == _EM_BPF:
            shoff = int.from_bytes(data[at + 0x28 : at + 0x30], "little")
            shentsize = int.from_bytes(data[at + 0x3A : at + 0x3C], "little")
            shnum = int.from_bytes(data[at + 0x3C : at + 0x3E], "little")
            end = at + shoff + shentsize * shnum
            if shentsize and end <= len(data):
                return data[at:end]
        at = data.find(_ELF_MAGIC, at + 1)
    return None


# -- eunomia-bpf package.json ------------------------------------------------------------------


def eunomia_object(doc: dict[str, Any], *, where: str) -> bytes:
    """The BPF object inside a package.json: base64, zlib, size checked."""
    encoded = doc.get("bpf_object")
    if not isinstance(encoded, str):
        raise ManifestError(f"{where}: bpf_object is not a string",
                            hint="expected the package.json that `ecc` writes")
    import base64
    import binascii
    import zlib

    try:
        packed = base64.b64decode(encoded, validate=True)
        inflate = zlib.decompressobj()
        obj = inflate.decompress(packed, _MAX_OBJECT + 1)
    except (binascii.Error, zlib.error, ValueError) as err:
        raise ManifestError(f"{where}: bpf_object is not base64 of zlib data ({err})",
                            hint="expected the package.json that `ecc` writes") from err
    if len(obj) > _MAX_OBJECT:
        raise ManifestError(f"{where}: bpf_object inflates beyond {_MAX_OBJECT >> 20} MiB")
    size = doc.get("bpf_object_size")
    if isinstance(size, int) and size != len(obj):
        raise ManifestError(f"{where}: bpf_object is {len(obj)} bytes, bpf_object_size says "
                            f"{size}", hint="the file is damaged; fetch it again")
    if not _is_bpf_elf(obj):
        raise ManifestError(f"{where}: bpf_object is not a BPF ELF object")
    return obj


def _meta(doc: dict[str, Any], where: str) -> dict[str, Any]:
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise ManifestError(f"{where}: meta is not an object")
    return meta


def _rodata_variables(meta: dict[str, Any]) -> list[dict[str, Any]]:
    skel = meta.get("bpf_skel") if isinstance(meta.get("bpf_skel"), dict) else {}
    out: list[dict[str, Any]] = []
    for section in skel.get("data_sections", []) if isinstance(skel, dict) else []:
        if not isinstance(section, dict) or section.get("name") != ".rodata":
            continue
        for var in section.get("variables", []):
            if isinstance(var, dict) and isinstance(var.get("name"), str) and not var[
                "name"
            ].startswith("__eunomia_dummy"):
                out.append(var)
    return out


def eunomia_config(obj: bytes, meta: dict[str, Any], *, name: str,
                   version: str = "0.0.0") -> PackageConfig:
    """The package config of an eunomia package: programs and maps from the object, args from
    meta's .rodata variables (eunomia sets them whether or not they are `volatile`), event
    types from `export_types`, help and defaults from their `description`/`cmdarg`."""
    from ebpm.build.metadata import extract

    variables = _rodata_variables(meta)
    config = extract(obj, name=name, version=version,
                     arg_names=tuple(v["name"] for v in variables))
    by_name = {v["name"]: v for v in variables}
    args: list[ArgSpec] = []
    for a in config.args:
        var = by_name.get(a.name, {})
        cmdarg: dict[str, Any] = var["cmdarg"] if isinstance(var.get("cmdarg"), dict) else {}
        flag = str(cmdarg["long"]) if isinstance(cmdarg.get("long"), str) else a.flag
        text = cmdarg.get("help") or var.get("description") or a.help
        args.append(replace(a, flag=flag, help=str(text)))
    events = config.events
    export = meta.get("export_types")
    if isinstance(export, list) and export and isinstance(export[0], dict):
        type_name = str(export[0].get("name", ""))
        event_maps = [m for m in config.maps if m.type in ("ringbuf", "perf_event_array")]
        if type_name and event_maps:
            chosen = next((m for m in event_maps if m.name in ("events", "rb")), event_maps[0])
            events = (EventSpec(map=chosen.name, type=type_name),)
    doc: dict[str, Any] = meta["doc"] if isinstance(meta.get("doc"), dict) else {}
    description = str(doc.get("brief") or doc.get("description") or "")
    return replace(config, args=tuple(args), events=events, description=description)


def to_eunomia(obj: bytes, config: PackageConfig) -> bytes:
    """A package.json (ecc's layout) for `obj`: what ecli runs. Event types are exported only
    when the object's own BTF defines them (ecli reads no sidecar)."""
    import base64
    import json
    import re
    import zlib

    from ebpm.loader.btf import Btf, Kind

    btf = Btf.parse(obj)
    obj_name = re.sub(r"[^A-Za-z0-9_]", "_", config.name) + "_bpf"
    maps: list[dict[str, Any]] = []
    for m in config.maps:
        maps.append({"ident": m.name, "name": m.name})
    for section in (".rodata", ".data", ".bss"):
        if btf.find(section, Kind.DATASEC) is not None:
            ident = section.lstrip(".")
            maps.append({"ident": ident, "mmaped": True, "name": f"{obj_name[:8]}.{ident}"})
    data_sections = []
    for section in (".rodata", ".bss"):  # ecli refuses any other ("Unsupported section")
        if btf.find(section, Kind.DATASEC) is None:
            continue
        variables = [{"name": v.name, "type": btf.type_name(v.type)}
                     for v in btf.datasec(section)
                     if v.linkage != 0]  # as ecc: no static ones (bpf_printk's formats)
        data_sections.append({"name": section, "variables": variables})
    progs = [{"attach": p.section, "link": True, "name": p.name} for p in config.programs
             if p.autoload]
    meta: dict[str, Any] = {
        "bpf_skel": {"data_sections": data_sections, "maps": maps, "obj_name": obj_name,
                     "progs": progs},
        "eunomia_version": _EUNOMIA_VERSION,
    }
    exported = []
    for event in config.events:
        t = btf.find(event.type, Kind.STRUCT, Kind.UNION)
        if t is None:
            continue
        members = [{"name": m.name, "type": btf.type_name(m.type)} for m in t.members]
        exported.append({"members": members, "name": t.name, "size": t.size, "type_id": t.id})
    if exported:
        meta["export_types"] = exported
    if config.description:
        meta["doc"] = {"brief": config.description}
    doc = {
        "bpf_object": base64.b64encode(zlib.compress(obj, 9)).decode(),
        "bpf_object_size": len(obj),
        "meta": meta,
    }
    return json.dumps(doc, indent=2).encode() + b"\n"


# -- one way in ---------------------------------------------------------------------------------


def unpack(data: bytes, *, where: str, name: str, version: str = "0.0.0") -> Unpacked:
    """Any runnable blob as an `Unpacked` package. A bare object or module gets the config
    its own bytes give (`name`, `version` from the caller); raises UsageError naming what the
    blob is when it is not runnable by itself."""
    fmt = detect(data)
    bare = PackageConfig(name=name, version=version)
    if fmt == BPF_OBJECT:
        return Unpacked(fmt, bare, object=data)
    if fmt == WASM:  # its programs are read only when asked (`wasm_config`: push, inspect)
        return Unpacked(fmt, bare, wasm=data)
    if fmt == EUNOMIA:
        import json

        doc = json.loads(data)
        obj = eunomia_object(doc, where=where)
        config = eunomia_config(obj, _meta(doc, where), name=name, version=version)
        return Unpacked(fmt, config, object=obj)
    if fmt == EUNOMIA_SKELETON:
        raise UsageError(f"{where}: {describe(fmt)}",
                         hint="pass the package.json that `ecc` writes beside it")
    if fmt == OCI_MANIFEST:
        raise UsageError(f"{where}: {describe(fmt)}, not a package file",
                         hint="run the package by its registry reference instead")
    if data.startswith(_ELF_MAGIC):
        machine = int.from_bytes(data[18:20], "little" if data[5:6] == b"\x01" else "big")
        raise UsageError(f"{where}: an ELF file for machine {machine}, not a BPF object",
                         hint="pass a .bpf.o compiled with clang -target bpf")
    raise UsageError(
        f"{where}: not a BPF object, wasm module or eunomia package.json",
        hint="ebpm runs .bpf.o objects, wasm-bpf modules, ecc's package.json and "
        "ebpm package directories",
    )


def wasm_config(wasm: bytes, *, name: str, version: str = "0.0.0") -> PackageConfig:
    """A wasm module's package config: programs and maps read from the BPF object it embeds
    (for `inspect` and the sandbox's requirements); bare when it embeds none."""
    obj = embedded_object(wasm)
    bare = PackageConfig(name=name, version=version)
    if obj is None:
        return bare
    from ebpm.build.metadata import extract
    from ebpm.errors import EbpmError

    try:
        config = extract(obj, name=name, version=version)
    except EbpmError:
        return bare
    return replace(config, events=(), args=())


def raw_btf(data: bytes, *, where: str = "BTF") -> bytes:
    """Raw BTF from either a raw blob or an ELF object compiled with -g (its .BTF section)."""
    from ebpm.loader.elf import is_elf, sections

    if not is_elf(data):
        return data
    section = sections(data).get(".BTF")
    if section is None:
        raise UsageError(f"{where}: the object has no .BTF section",
                         hint="compile it with clang -g -target bpf")
    return section
