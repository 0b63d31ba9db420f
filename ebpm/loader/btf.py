"""BTF, the BPF type format: parse raw BTF (an object's .BTF section or a sidecar) into types."""

from __future__ import annotations

import struct

from ebpm.errors import EbpmError, LoadError
from ebpm.record import record

__all__ = [
    "Kind",
    "KIND_NAMES",
    "Member",
    "BtfType",
    "Btf",
    "DataVar",
    "INT_SIGNED",
    "INT_CHAR",
    "INT_BOOL",
]

BTF_MAGIC = 0xEB9F
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4
_MAX_HOPS = 64  # modifier chains longer than this are loops in damaged BTF
_MAX_NESTING = 32  # array nesting depth accepted by sizeof()
_POINTER_SIZE = 8  # bytes: BPF is a 64-bit target


class Kind:
    """BTF_KIND_* numbers."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


KIND_NAMES = {v: k for k, v in vars(Kind).items() if k.isupper()}
_MODIFIERS = {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}


@record
class Member:
    """A struct/union member, an enum value, a datasec variable or a function parameter."""

    name: str
    type: int = 0
    bit_offset: int = 0  # struct/union members; datasec variables: byte offset * 8
    bitfield_size: int = 0  # 0: not a bitfield
    value: int = 0  # enum values
    size: int = 0  # datasec variables


@record
class BtfType:
    """One BTF type: `size` for sized kinds, `type` for kinds that refer to another type."""

    id: int
    kind: int
    name: str
    size: int = 0  # INT/STRUCT/UNION/ENUM/FLOAT/DATASEC
    type: int = 0  # PTR/TYPEDEF/modifiers/VAR/FUNC: the referenced type; ARRAY: element type
    nelems: int = 0  # ARRAY
    encoding: int = 0  # INT: INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int = 0  # INT: number of bits
    signed: bool = False  # ENUM/ENUM64 (the kind flag of the other kinds)
    linkage: int = 0  # VAR: 0 static, 1 global; FUNC: 0 static, 1 global, 2 extern
    members: tuple[Member, ...] = ()


@record
class DataVar:
    """A global variable inside a data section (.rodata, .data, .bss)."""

    name: str
    type: int
    offset: int
    size: int
    linkage: int


class Btf:
    """A parsed BTF blob: types by id (1-based; 0 is void) and lookup by name.

    Parsing reads each type's 12-byte header only, to know where every type starts; a type
    is decoded (its members too) when it is first asked for. An object built against
    vmlinux.h carries hundreds to thousands of types, of which a run or a build looks at a
    handful (`ebpm run X.bpf.o` parses its BTF before libbpf's load starts).

    Damaged BTF raises `error` (LoadError by default; the build passes BuildError), its
    message prefixed with `where`.
    """

    def __init__(self, table: _Table, *, where: str = "BTF",
                 error: type[EbpmError] = LoadError) -> None:
        self._table = table
        self._decoded: list[BtfType | None] = [None] * len(table.starts)
        self._decoded[0] = BtfType(0, Kind.UNKN, "")
        self.where = where
        self.error = error
        self._names: dict[tuple[str, int], int] | None = None

    @classmethod
    def parse(
        cls, data: bytes, *, where: str = "BTF", error: type[EbpmError] = LoadError
    ) -> Btf:
        """Parse raw BTF (an ELF object's .BTF section, or the object itself)."""
        if data[:4] == b"\x7fELF":
            from ebpm.loader.elf import ElfFile

            elf = ElfFile(data, where=where, error=error)
            section = elf.section(".BTF")
            if section is None:
                raise error(
                    f"{where}: the object has no .BTF section", hint="compile it with clang -g"
                )
            data = elf.section_data(section)
        try:
            return cls(_scan(data, where, error), where=where, error=error)
        except (struct.error, IndexError, ValueError) as err:
            raise error(f"{where}: malformed type data: {err}") from err

    def __len__(self) -> int:
        return len(self._decoded)

    def __getitem__(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self._decoded):
            raise self.error(f"{self.where}: BTF type id {type_id} out of range")
        t = self._decoded[type_id]
        if t is None:
            t = self._decoded[type_id] = _decode(self._table, type_id)
        return t

    @property
    def types(self) -> list[BtfType]:
        """Every type, decoded, by id (types[0] is void)."""
        return [self[i] for i in range(len(self._decoded))]

    @property
    def _by_name(self) -> dict[tuple[str, int], int]:
        """(name, kind) -> the first type id so named (made at the first lookup)."""
        if self._names is None:
            table = self._table
            names: dict[tuple[str, int], int] = {}
            for tid in range(1, len(table.starts)):
                name_off, info, _ = table.trip.unpack_from(table.blob, table.starts[tid])
                if name_off:
                    names.setdefault((table.name_at(name_off), (info >> 24) & 0x1F), tid)
            self._names = names
        return self._names

    def find(self, name: str, *kinds: int) -> BtfType | None:
        """The first type named `name` of one of `kinds` (default: struct, union, typedef)."""
        for kind in kinds or (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF, Kind.ENUM, Kind.INT):
            tid = self._by_name.get((name, kind))
            if tid is not None:
                return self[tid]
        return None

    def has_type(self, name: str) -> bool:
        """Whether a complete struct/union/enum/typedef of this name is defined."""
        kinds = (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.TYPEDEF)
        return self.find(name, *kinds) is not None

    def _skip(self, type_id: int, modifiers: set[int]) -> BtfType:
        t = self[type_id]
        for _ in range(_MAX_HOPS):
            if t.kind not in modifiers:
                return t
            t = self[t.type]
        if t.kind not in modifiers:
            return t
        raise self.error(f"{self.where}: BTF modifier loop at type {type_id}")

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers (const, volatile, restrict, type tags)."""
        return self._skip(type_id, _MODIFIERS)

    def skip_qualifiers(self, type_id: int) -> BtfType:
        """Skip const/volatile/restrict/type tags but keep typedefs (their names matter)."""
        return self._skip(type_id, _MODIFIERS - {Kind.TYPEDEF})

    def qualifiers(self, type_id: int) -> set[int]:
        """The modifier kinds (Kind.CONST, Kind.VOLATILE, ...) met before the first other type."""
        out: set[int] = set()
        t = self[type_id]
        for _ in range(_MAX_HOPS):
            if t.kind not in _MODIFIERS:
                return out
            out.add(t.kind)
            t = self[t.type]
        raise self.error(f"{self.where}: BTF modifier loop at type {type_id}")

    def sizeof(self, type_id: int, *, _depth: int = 0) -> int:
        """The byte size of a type (arrays multiplied out, pointers 8)."""
        if _depth > _MAX_NESTING:
            raise self.error(f"{self.where}: BTF array nesting too deep at type {type_id}")
        t = self.resolve(type_id)
        if t.kind == Kind.ARRAY:
            return t.nelems * self.sizeof(t.type, _depth=_depth + 1)
        if t.kind == Kind.PTR:
            return _POINTER_SIZE
        return t.size

    def datasec(self, name: str) -> list[DataVar]:
        """The variables of data section `name` (e.g. ".rodata"), in offset order."""
        sec = self.find(name, Kind.DATASEC)
        if sec is None:
            return []
        out = []
        for m in sec.members:
            var = self[m.type]
            out.append(DataVar(var.name, var.type, m.bit_offset // 8, m.size, var.linkage))
        return sorted(out, key=lambda v: v.offset)

    def bare_name(self, type_id: int) -> str:
        """The first name met through modifiers (`u32`, `event`), or ''."""
        t = self[type_id]
        for _ in range(_MAX_HOPS):
            if t.name:
                return t.name
            if t.kind not in _MODIFIERS:
                return ""
            t = self[t.type]
        return ""

    def type_name(self, type_id: int) -> str:
        """A C spelling of the type, for help texts and error messages."""
        t = self[type_id]
        if t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG):
            return self.type_name(t.type)
        if t.kind == Kind.PTR:
            return self.type_name(t.type) + " *"
        if t.kind == Kind.ARRAY:
            return f"{self.type_name(t.type)}[{t.nelems}]"
        if t.kind == Kind.STRUCT:
            return f"struct {t.name}"
        if t.kind == Kind.UNION:
            return f"union {t.name}"
        if t.kind in (Kind.ENUM, Kind.ENUM64):
            return f"enum {t.name}"
        return t.name or "void"


# The bytes that follow a type's 12-byte header, by kind: (fixed, per member, `vlen` of them).
_TRAILING = {Kind.INT: (4, 0), Kind.ARRAY: (12, 0), Kind.STRUCT: (0, 12), Kind.UNION: (0, 12),
             Kind.ENUM: (0, 8), Kind.FUNC_PROTO: (0, 8), Kind.VAR: (4, 0), Kind.DATASEC: (0, 12),
             Kind.DECL_TAG: (4, 0), Kind.ENUM64: (0, 12), Kind.PTR: (0, 0), Kind.FWD: (0, 0),
             Kind.TYPEDEF: (0, 0), Kind.VOLATILE: (0, 0), Kind.CONST: (0, 0),
             Kind.RESTRICT: (0, 0), Kind.FUNC: (0, 0), Kind.FLOAT: (0, 0), Kind.TYPE_TAG: (0, 0)}


class _Table:
    """A BTF blob's type section and strings, the readers for its byte order, and where each
    type's header starts."""

    def __init__(self, blob: bytes, strings: bytes, end: str, starts: list[int]) -> None:
        self.blob = blob
        self.strings = strings
        self.starts = starts  # index = type id; starts[0] (void) is unused
        self.u32 = struct.Struct(end + "I")
        self.trip = struct.Struct(end + "III")
        self.pair = struct.Struct(end + "Ii")
        self.two = struct.Struct(end + "II")

    def name_at(self, off: int) -> str:
        strings = self.strings
        stop = strings.find(b"\0", off)
        return strings[off : stop if stop >= 0 else len(strings)].decode("utf-8", "replace")


def _scan(data: bytes, where: str, error: type[EbpmError]) -> _Table:
    """The types' starts, from their headers alone; checks the blob's layout and that every
    type's data fits in it."""
    if len(data) < 24:
        raise error(f"{where}: BTF too short")
    magic = struct.unpack_from("<H", data, 0)[0]
    end = "<" if magic == BTF_MAGIC else ">"
    if struct.unpack_from(end + "H", data, 0)[0] != BTF_MAGIC:
        raise error(f"{where}: bad BTF magic (not a BTF blob)")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(end + "5I", data, 4)
    types_start = hdr_len + type_off
    strs_start = hdr_len + str_off
    if types_start + type_len > len(data) or strs_start + str_len > len(data):
        raise error(f"{where}: BTF sections run past the end of the data")
    blob = data[types_start : types_start + type_len]
    table = _Table(blob, data[strs_start : strs_start + str_len], end, [0])
    header = table.trip.unpack_from
    starts = table.starts
    pos, size = 0, len(blob)
    while pos + 12 <= size:
        _name, info, _ = header(blob, pos)
        kind = (info >> 24) & 0x1F
        trailing = _TRAILING.get(kind)
        if trailing is None:
            raise error(f"{where}: unknown BTF type kind {kind} (type id {len(starts)})")
        starts.append(pos)
        pos += 12 + trailing[0] + trailing[1] * (info & 0xFFFF)
        if pos > size:
            raise error(f"{where}: malformed type data: type {len(starts) - 1} runs past the "
                        "end of the type section")
    return table


def _decode(table: _Table, tid: int) -> BtfType:
    """Type `tid` in full, members and names (its data known to fit: `_scan`)."""
    blob, name_at, trip = table.blob, table.name_at, table.trip
    pos = table.starts[tid]
    name_off, info, size_or_type = trip.unpack_from(blob, pos)
    pos += 12
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    kflag = bool(info >> 31)
    name = name_at(name_off)
    if kind == Kind.INT:
        (enc,) = table.u32.unpack_from(blob, pos)
        return BtfType(tid, kind, name, size=size_or_type, encoding=(enc >> 24) & 0xF,
                       bits=enc & 0xFF)
    if kind == Kind.ARRAY:
        elem, _index, nelems = trip.unpack_from(blob, pos)
        return BtfType(tid, kind, name, type=elem, nelems=nelems)
    if kind in (Kind.STRUCT, Kind.UNION):
        members = []
        for _ in range(vlen):
            m_name, m_type, m_off = trip.unpack_from(blob, pos)
            pos += 12
            bits, off = (m_off >> 24, m_off & 0xFFFFFF) if kflag else (0, m_off)
            members.append(Member(name_at(m_name), m_type, off, bits))
        return BtfType(tid, kind, name, size=size_or_type, members=tuple(members))
    if kind == Kind.ENUM:
        members = []
        for _ in range(vlen):
            m_name, val = table.pair.unpack_from(blob, pos)
            pos += 8
            members.append(Member(name_at(m_name), value=val if kflag else val & 0xFFFFFFFF))
        return BtfType(tid, kind, name, size=size_or_type, signed=kflag,
                       members=tuple(members))
    if kind == Kind.ENUM64:
        members = []
        for _ in range(vlen):
            m_name, lo, hi = trip.unpack_from(blob, pos)
            pos += 12
            val = (hi << 32) | lo
            if kflag and val >= 1 << 63:
                val -= 1 << 64
            members.append(Member(name_at(m_name), value=val))
        return BtfType(tid, kind, name, size=size_or_type, signed=kflag,
                       members=tuple(members))
    if kind == Kind.FUNC_PROTO:
        members = []
        for _ in range(vlen):
            m_name, m_type = table.two.unpack_from(blob, pos)
            pos += 8
            members.append(Member(name_at(m_name), m_type))
        return BtfType(tid, kind, name, type=size_or_type, members=tuple(members))
    if kind == Kind.VAR:
        (linkage,) = table.u32.unpack_from(blob, pos)
        return BtfType(tid, kind, name, type=size_or_type, linkage=linkage)
    if kind == Kind.DATASEC:
        members = []
        for _ in range(vlen):
            v_type, v_off, v_size = trip.unpack_from(blob, pos)
            pos += 12
            members.append(Member("", v_type, v_off * 8, size=v_size))
        return BtfType(tid, kind, name, size=size_or_type, members=tuple(members))
    if kind == Kind.DECL_TAG:
        return BtfType(tid, kind, name, type=size_or_type)
    if kind == Kind.FLOAT:
        return BtfType(tid, kind, name, size=size_or_type)
    if kind == Kind.FUNC:
        return BtfType(tid, kind, name, type=size_or_type, signed=kflag, linkage=vlen)
    # PTR, FWD, TYPEDEF and the modifiers (`_scan` let no other kind through)
    return BtfType(tid, kind, name, type=size_or_type, signed=kflag)
