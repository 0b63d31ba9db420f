"""Metadata extraction: what a compiled BPF object says about itself, as a `PackageConfig`.

Pure Python (the loader's ELF and BTF readers): works on a bare `.bpf.o` without clang or bpftool.
"""

from __future__ import annotations

import struct

from ebpm import __version__
from ebpm.build.groups import group_programs
from ebpm.build.sections import classify
from ebpm.errors import BuildError, ManifestError
from ebpm.loader.btf import INT_BOOL, INT_SIGNED, Btf, Kind
from ebpm.loader.elf import SHF_EXECINSTR, STT_FUNC, ElfFile
from ebpm.package import (
    ArgSpec,
    EventSpec,
    MapSpec,
    MetricSpec,
    PackageConfig,
    ProgramSpec,
    ProjectManifest,
    Requirements,
)
from ebpm.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # (collections' import costs a bare object's run ~2 ms before its load)
    from collections.abc import Sequence
    from typing import Any

__all__ = ["MAP_TYPES", "EVENT_MAP_TYPES", "CONVENTIONAL_EVENT", "extract", "flag_name"]

# enum bpf_map_type, named as libbpf's libbpf_bpf_map_type_str() names them.
MAP_TYPES = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array",
    "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps",
    "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
    "reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage",
    "devmap_hash", "struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter",
    "user_ringbuf", "cgrp_storage", "arena",
)
EVENT_MAP_TYPES = ("ringbuf", "perf_event_array")
CONVENTIONAL_EVENT = "event"  # `struct event`, the libbpf-bootstrap habit
_ARG_PREFIXES = ("targ_", "filter_")


def flag_name(var: str) -> str:
    """The command-line flag of a global: `targ_min_us` -> `min-us`."""
    for prefix in _ARG_PREFIXES:
        if var.startswith(prefix) and len(var) > len(prefix):
            var = var[len(prefix) :]
            break
    return var.replace("_", "-")


def extract(
    object_bytes: bytes,
    *,
    manifest: ProjectManifest | None = None,
    source_text: str | None = None,
    header_texts: Sequence[str] = (),
    sidecar_btf: bytes | None = None,
    name: str | None = None,
    version: str | None = None,
    arch: Sequence[str] = (),
    builder: str = "",
    arg_names: Sequence[str] = (),
) -> PackageConfig:
    """Read programs, maps, events and args of a BPF object into a `PackageConfig`.

    `manifest` supplies name, version and the rest of [package], declared events, arg
    overrides and `[build.groups]`; without it the name is `name` (default "package") and
    the version `version` (default 0.0.0). `arg_names` makes these .rodata globals args even
    without `volatile` (eunomia packages declare their settable variables). `source_text`
    (the .bpf.c) gives arg help from doc comments; `header_texts` and `sidecar_btf` let the
    `struct event` convention see types the object's own BTF lacks.
    """
    elf = ElfFile(object_bytes, error=BuildError)
    if not elf.is_bpf:
        raise BuildError("object: not a BPF object (ELF machine is not BPF)",
                         hint="compile with `clang -target bpf`")
    btf_section = elf.section(".BTF")
    if btf_section is None:
        raise BuildError("object: has no .BTF section",
                         hint="compile with `clang -g -target bpf` (ebpm packages are CO-RE)")
    btf = Btf.parse(elf.section_data(btf_section), where="object .BTF", error=BuildError)
    sidecar = (
        Btf.parse(sidecar_btf, where="BTF sidecar", error=BuildError) if sidecar_btf else None
    )

    where = f"{manifest.file}: " if manifest else ""
    groups = (manifest.build.get("groups") if manifest else None) or {}
    if not isinstance(groups, dict):
        raise ManifestError(f"{where}[build.groups]: expected a table of group = [program, ...]")
    programs = group_programs(_programs(elf), groups, where=where)
    maps = _maps(btf)
    events = _events(maps, btf, sidecar, manifest, [source_text or "", *header_texts])
    docs: dict[str, str] = {}
    if source_text:  # (re with it: a bare object's run, on its way to the load, has no source)
        from ebpm.build.source_docs import arg_docs

        docs = arg_docs(source_text)
    args = _args(elf, btf, manifest, docs, set(arg_names))

    if manifest is not None:
        pkg_name, pkg_version = manifest.name, manifest.version
    else:
        pkg_name, pkg_version = name or "package", version or "0.0.0"
    return PackageConfig(
        name=pkg_name,
        version=pkg_version,
        description=manifest.description if manifest else "",
        authors=manifest.authors if manifest else (),
        license=manifest.license if manifest else _license(elf),
        source=manifest.source if manifest else "",
        dependencies=dict(manifest.dependencies) if manifest else {},
        programs=programs,
        maps=maps,
        events=events,
        args=args,
        requirements=Requirements(btf=True, arch=tuple(arch)),
        builder=builder or f"ebpm {__version__}",
        metrics=_checked_metrics(manifest.metrics, maps) if manifest else (),
        display=dict(manifest.display) if manifest else {},
    )


def extract_given(object_bytes: bytes, *, where: str, **options: Any) -> PackageConfig:
    """`extract` of an object someone gave (a file, a package's layer): one that ebpm cannot
    read is named (`where`), with a hint, not reported as "object: ..." of no file."""
    try:
        return extract(object_bytes, **options)
    except BuildError as err:
        reason = err.message.removeprefix("object: ").removeprefix("object ")
        if err.hint:  # a known cause (not a BPF object, no .BTF): its own hint
            raise BuildError(f"{where}: {reason}", hint=err.hint) from err
        raise BuildError(f"{where}: cannot be read as a BPF object (damaged?): {reason}",
                         hint="build it again (`ebpm build`, or clang -O2 -g -target bpf), "
                         "or pull it again") from err


def _checked_metrics(specs: tuple[MetricSpec, ...], maps: Sequence[Any]) -> tuple[
        MetricSpec, ...]:
    """[metrics.MAP] must name maps of the object."""
    names = {m.name for m in maps}
    for spec in specs:
        if spec.map not in names:
            raise ManifestError(f"ebpm.toml [metrics.{spec.map}]: the object has no map "
                                f"{spec.map!r}", hint="maps: " + ", ".join(sorted(names)))
    return specs


def _license(elf: ElfFile) -> str:
    section = elf.section("license")
    if section is None:
        return ""
    return elf.section_data(section).split(b"\0", 1)[0].decode("ascii", "replace")


def _programs(elf: ElfFile) -> list[ProgramSpec]:
    out: list[tuple[int, int, ProgramSpec]] = []
    for sym in elf.symbols():
        if sym.type != STT_FUNC or not sym.is_global or not 0 < sym.section < len(elf.sections):
            continue
        section = elf.sections[sym.section]
        if not section.flags & SHF_EXECINSTR or section.name == ".text":
            continue
        kind = classify(section.name)
        spec = ProgramSpec(
            name=sym.name,
            section=section.name.lstrip("?"),
            type=kind.kind,
            attach=kind.attach,
            autoload=kind.autoload,
        )
        out.append((section.index, sym.value, spec))
    out.sort(key=lambda item: (item[0], item[1]))
    return [spec for _, _, spec in out]


def _map_uint(btf: Btf, type_id: int) -> int:
    """A BTF-defined map member `__uint(x, N)`, that is `int (*x)[N]`: N."""
    ptr = btf[type_id]
    if ptr.kind != Kind.PTR:
        return 0
    target = btf[ptr.type]
    return target.nelems if target.kind == Kind.ARRAY else 0


def _maps(btf: Btf) -> tuple[MapSpec, ...]:
    datasec = btf.find(".maps", Kind.DATASEC)
    if datasec is None:
        return ()
    out = []
    for entry in datasec.members:
        var = btf[entry.type]
        if var.kind != Kind.VAR:
            continue
        struct_t = btf.resolve(var.type)
        if struct_t.kind != Kind.STRUCT:
            continue
        fields: dict[str, int] = {}
        names: dict[str, str] = {}
        for member in struct_t.members:
            if member.name in ("key", "value"):  # __type(key, T): a pointer to T
                ptr = btf[member.type]
                if ptr.kind == Kind.PTR:
                    names[member.name] = btf.bare_name(ptr.type)
                    fields[member.name + "_size"] = btf.sizeof(ptr.type)
                continue
            fields[member.name] = _map_uint(btf, member.type)
        map_type = fields.get("type", 0)
        out.append(
            MapSpec(
                name=var.name,
                type=MAP_TYPES[map_type] if map_type < len(MAP_TYPES) else str(map_type),
                key_size=fields.get("key_size", 0),
                value_size=fields.get("value_size", 0),
                max_entries=fields.get("max_entries", 0),
                key_type=names.get("key", ""),
                value_type=names.get("value", ""),
            )
        )
    return tuple(out)


def _bare(type_name: str) -> str:
    """`event` for `struct event` (and union, enum); other names as they are, stripped."""
    text = type_name.lstrip()
    for word in ("struct", "union", "enum"):
        if text.startswith(word) and text[len(word):len(word) + 1].isspace():
            return text[len(word):].strip()
    return text.strip()


def _events(
    maps: tuple[MapSpec, ...],
    btf: Btf,
    sidecar: Btf | None,
    manifest: ProjectManifest | None,
    texts: Sequence[str],
) -> tuple[EventSpec, ...]:
    by_name = {m.name: m for m in maps}
    declared = manifest.events if manifest else {}
    where = f"{manifest.file}: " if manifest else ""
    if declared:
        out = []
        for map_name, type_name in sorted(declared.items()):
            m = by_name.get(map_name)
            if m is None or m.type not in EVENT_MAP_TYPES:
                raise ManifestError(
                    f"{where}[events] {map_name}: no ring buffer or perf event array map of "
                    "that name",
                    hint="event maps here: "
                    + (", ".join(n for n, x in by_name.items() if x.type in EVENT_MAP_TYPES)
                       or "none"),
                )
            if not isinstance(type_name, str) or not _bare(type_name):
                raise ManifestError(f"{where}[events] {map_name}: expected a C type name")
            out.append(EventSpec(map=map_name, type=_bare(type_name)))
        return tuple(out)
    event_maps = [m for m in maps if m.type in EVENT_MAP_TYPES]
    if not event_maps:
        return ()
    chosen = next((m for m in event_maps if m.name == "events"), event_maps[0])
    known = btf.has_type(CONVENTIONAL_EVENT) or (
        sidecar is not None and sidecar.has_type(CONVENTIONAL_EVENT)
    )
    if not known and any(texts):
        import re

        pattern = re.compile(r"\bstruct\s+" + CONVENTIONAL_EVENT + r"\s*\{")
        known = any(pattern.search(text) for text in texts)
    return (EventSpec(map=chosen.name, type=CONVENTIONAL_EVENT),) if known else ()


def _arg_type(btf: Btf, type_id: int) -> tuple[str, int] | None:
    t = btf.resolve(type_id)
    if t.kind == Kind.INT:
        if t.encoding & INT_BOOL:
            return "bool", t.size
        return ("int" if t.encoding & INT_SIGNED else "uint"), t.size
    if t.kind in (Kind.ENUM, Kind.ENUM64):
        return ("int" if t.signed else "uint"), t.size
    if t.kind == Kind.FLOAT and t.size in (4, 8):
        return "float", t.size
    if t.kind == Kind.ARRAY:
        elem = btf.resolve(t.type)
        if elem.kind == Kind.INT and elem.size == 1:
            return "str", t.nelems
    return None


def _decode(kind: str, raw: bytes) -> bool | int | float | str:
    if kind == "bool":
        return any(raw)
    if kind in ("int", "uint"):
        return int.from_bytes(raw, "little", signed=kind == "int")
    if kind == "float":
        return float(struct.unpack("<d" if len(raw) == 8 else "<f", raw)[0])
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _args(
    elf: ElfFile, btf: Btf, manifest: ProjectManifest | None, docs: dict[str, str],
    named: set[str] | None = None,
) -> tuple[ArgSpec, ...]:
    section = elf.section(".rodata")
    datasec = btf.find(".rodata", Kind.DATASEC)
    overrides = manifest.args if manifest else {}
    where = f"{manifest.file}: " if manifest else ""
    if section is None or datasec is None:
        if overrides:
            raise ManifestError(
                f"{where}[args] {', '.join(sorted(overrides))}: the object has no "
                "`const volatile` globals",
                hint="declare settings as `const volatile TYPE NAME = DEFAULT;`")
        return ()
    rodata = elf.section_data(section)
    offsets = {
        s.name: (s.value, s.size) for s in elf.symbols() if s.section == section.index and s.name
    }
    out = []
    for entry in datasec.members:
        var = btf[entry.type]
        if var.kind != Kind.VAR:
            continue
        if var.name not in (named or ()) and not {Kind.CONST, Kind.VOLATILE} <= btf.qualifiers(
            var.type
        ) | _array_qualifiers(btf, var.type):
            continue
        typed = _arg_type(btf, var.type)
        if typed is None:
            continue
        kind, size = typed
        offset, sym_size = offsets.get(var.name, (entry.bit_offset // 8, entry.size))
        if sym_size and sym_size != size:
            continue  # symbol and BTF disagree: not something a flag can safely set
        raw = rodata[offset : offset + size] if offset + size <= len(rodata) else bytes(size)
        extra = overrides.get(var.name, {})  # (ProjectManifest checked its keys and types)
        out.append(
            ArgSpec(
                name=var.name,
                flag=str(extra.get("flag") or flag_name(var.name)),
                type=kind,
                size=size,
                default=_decode(kind, raw),
                help=str(extra.get("help") or docs.get(var.name, "")),
                offset=offset,
            )
        )
    unknown = sorted(set(overrides) - {a.name for a in out})
    if unknown:
        raise ManifestError(
            f"{where}[args] {', '.join(unknown)}: no `const volatile` global of that name",
            hint="globals: " + (", ".join(a.name for a in out) or "none"),
        )
    out = _distinct_flags(out, overrides)
    flags = [a.flag for a in out]
    dupes = sorted({f for f in flags if flags.count(f) > 1})
    if dupes:
        raise ManifestError(f"{where}[args]: flag(s) {', '.join(dupes)} used twice",
                            hint="set `flag` in [args.NAME] to tell them apart")
    return tuple(out)


def _distinct_flags(args: list[ArgSpec], overrides: dict[str, Any]) -> list[ArgSpec]:
    """Globals whose derived flags collide (`filter_dev`, `targ_dev` -> `--dev`) keep their
    full names instead (`--filter-dev`, `--targ-dev`); a collision with a flag set in ebpm.toml
    stays an error (the author chose that name)."""
    def declared(a: ArgSpec) -> bool:
        return isinstance(overrides.get(a.name), dict) and "flag" in overrides[a.name]

    out = []
    for a in args:
        same = [b for b in args if b.flag == a.flag]
        if len(same) > 1 and not any(declared(b) for b in same):
            a = replace(a, flag=a.name.replace("_", "-"))
        out.append(a)
    return out


def _array_qualifiers(btf: Btf, type_id: int) -> set[int]:
    """`const volatile char x[16]` puts the qualifiers on the element type."""
    t = btf.skip_qualifiers(type_id)
    if t.kind == Kind.ARRAY:
        return btf.qualifiers(t.type)
    return set()
