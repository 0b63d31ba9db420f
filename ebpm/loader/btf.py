"""BTF, the BPF type format: parse raw BTF (an object's .BTF section or a sidecar) into types."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ebpm.errors import LoadError

__all__ = [
    "Kind",
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


_MODIFIERS = {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}


@dataclass(frozen=True)
class Member:
    """A struct/union member, an enum value, a datasec variable or a function parameter."""

    name: str
    type: int = 0
    bit_offset: int = 0
    bitfield_size: int = 0  # 0: not a bitfield
    value: int = 0  # enum values
    size: int = 0  # datasec variables


@dataclass(frozen=True)
class BtfType:
    id: int
    kind: int
    name: str
    size: int = 0  # INT/STRUCT/UNION/ENUM/FLOAT/DATASEC
    type: int = 0  # PTR/TYPEDEF/modifiers/VAR/FUNC: the referenced type; ARRAY: element type
    nelems: int = 0  # ARRAY
    encoding: int = 0  # INT: INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int = 0  # INT: number of bits
    signed: bool = False  # ENUM/ENUM64
    linkage: int = 0  # VAR: 0 static, 1 global
    members: tuple[Member, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class DataVar:
    """A global variable inside a data section (.rodata, .data, .bss)."""

    name: str
    type: int
    offset: int
    size: int
    linkage: int


class Btf:
    """A parsed BTF blob: types by id (1-based; 0 is void) and lookup by name."""

    def __init__(self, types: list[BtfType]) -> None:
        self.types = types  # index = type id; types[0] is void
        self._by_name: dict[tuple[str, int], int] = {}
        for t in types[1:]:
            if t.name:
                self._by_name.setdefault((t.name, t.kind), t.id)

    @classmethod
    def parse(cls, data: bytes) -> Btf:
        """Parse raw BTF (an ELF object's .BTF section, or the object itself)."""
        if data[:4] == b"\x7fELF":
            from ebpm.loader.elf import sections

            raw = sections(data).get(".BTF")
            if raw is None:
                raise LoadError(
                    "BTF: the object has no .BTF section", hint="compile it with clang -g"
                )
            data = raw
        try:
            return cls(_parse(data))
        except (struct.error, IndexError, UnicodeDecodeError) as err:
            raise LoadError(f"BTF: malformed type data: {err}") from err

    def __getitem__(self, type_id: int) -> BtfType:
        return self.types[type_id]

    def find(self, name: str, *kinds: int) -> BtfType | None:
        """The first type named `name` of one of `kinds` (default: struct, union, typedef)."""
        for kind in kinds or (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF, Kind.ENUM, Kind.INT):
            tid = self._by_name.get((name, kind))
            if tid is not None:
                return self.types[tid]
        return None

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers (const, volatile, restrict, type tags)."""
        t = self.types[type_id]
        while t.kind in _MODIFIERS:
            t = self.types[t.type]
        return t

    def skip_qualifiers(self, type_id: int) -> BtfType:
        """Skip const/volatile/restrict/type tags but keep typedefs (their names matter)."""
        t = self.types[type_id]
        while t.kind in _MODIFIERS and t.kind != Kind.TYPEDEF:
            t = self.types[t.type]
        return t

    def sizeof(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind == Kind.ARRAY:
            return t.nelems * self.sizeof(t.type)
        if t.kind == Kind.PTR:
            return 8
        return t.size

    def datasec(self, name: str) -> list[DataVar]:
        """The variables of data section `name` (e.g. ".rodata"), in offset order."""
        sec = self.find(name, Kind.DATASEC)
        if sec is None:
            return []
        out = []
        for m in sec.members:
            var = self.types[m.type]
            out.append(DataVar(var.name, var.type, m.bit_offset // 8, m.size, var.linkage))
        return sorted(out, key=lambda v: v.offset)

    def type_name(self, type_id: int) -> str:
        """A C spelling of the type, for help texts and error messages."""
        t = self.types[type_id]
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


def _parse(data: bytes) -> list[BtfType]:
    magic = struct.unpack_from("<H", data, 0)[0]
    end = "<" if magic == BTF_MAGIC else ">"
    if struct.unpack_from(end + "H", data, 0)[0] != BTF_MAGIC:
        raise LoadError("BTF: bad magic (not a BTF blob)")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(end + "5I", data, 4)
    strings = data[hdr_len + str_off : hdr_len + str_off + str_len]

    def name_at(off: int) -> str:
        return strings[off : strings.index(b"\0", off)].decode() if off else ""

    u32 = struct.Struct(end + "I")
    i32 = struct.Struct(end + "i")
    trip = struct.Struct(end + "III")
    pair = struct.Struct(end + "Ii")
    types: list[BtfType] = [BtfType(0, Kind.UNKN, "void")]
    pos = hdr_len + type_off
    stop = pos + type_len
    while pos < stop:
        name_off, info, size_or_type = trip.unpack_from(data, pos)
        pos += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        tid = len(types)
        name = name_at(name_off)
        if kind == Kind.INT:
            (enc,) = u32.unpack_from(data, pos)
            pos += 4
            types.append(BtfType(tid, kind, name, size=size_or_type, encoding=(enc >> 24) & 0xF,
                                 bits=enc & 0xFF))
        elif kind == Kind.ARRAY:
            elem, _index, nelems = trip.unpack_from(data, pos)
            pos += 12
            types.append(BtfType(tid, kind, name, type=elem, nelems=nelems))
        elif kind in (Kind.STRUCT, Kind.UNION):
            members = []
            for _ in range(vlen):
                m_name, m_type, m_off = trip.unpack_from(data, pos)
                pos += 12
                bits, off = (m_off >> 24, m_off & 0xFFFFFF) if kflag else (0, m_off)
                members.append(Member(name_at(m_name), m_type, off, bits))
            types.append(BtfType(tid, kind, name, size=size_or_type, members=tuple(members)))
        elif kind == Kind.ENUM:
            members = []
            for _ in range(vlen):
                m_name, val = pair.unpack_from(data, pos)
                pos += 8
                members.append(Member(name_at(m_name), value=val if kflag else val & 0xFFFFFFFF))
            types.append(BtfType(tid, kind, name, size=size_or_type, signed=kflag,
                                 members=tuple(members)))
        elif kind == Kind.ENUM64:
            members = []
            for _ in range(vlen):
                m_name, lo, hi = trip.unpack_from(data, pos)
                pos += 12
                val = (hi << 32) | lo
                if kflag and val >= 1 << 63:
                    val -= 1 << 64
                members.append(Member(name_at(m_name), value=val))
            types.append(BtfType(tid, kind, name, size=size_or_type, signed=kflag,
                                 members=tuple(members)))
        elif kind == Kind.FUNC_PROTO:
            members = []
            for _ in range(vlen):
                m_name, m_type = struct.unpack_from(end + "II", data, pos)
                pos += 8
                members.append(Member(name_at(m_name), m_type))
            types.append(BtfType(tid, kind, name, type=size_or_type, members=tuple(members)))
        elif kind == Kind.VAR:
            (linkage,) = u32.unpack_from(data, pos)
            pos += 4
            types.append(BtfType(tid, kind, name, type=size_or_type, linkage=linkage))
        elif kind == Kind.DATASEC:
            members = []
            for _ in range(vlen):
                v_type, v_off, v_size = trip.unpack_from(data, pos)
                pos += 12
                members.append(Member("", v_type, v_off * 8, size=v_size))
            types.append(BtfType(tid, kind, name, size=size_or_type, members=tuple(members)))
        elif kind == Kind.DECL_TAG:
            i32.unpack_from(data, pos)
            pos += 4
            types.append(BtfType(tid, kind, name, type=size_or_type))
        elif kind in (Kind.FLOAT,):
            types.append(BtfType(tid, kind, name, size=size_or_type))
        elif kind in (Kind.PTR, Kind.FWD, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
                      Kind.FUNC, Kind.TYPE_TAG):
            types.append(BtfType(tid, kind, name, type=size_or_type, signed=kflag))
        else:
            raise LoadError(f"BTF: unknown type kind {kind} (type id {tid})")
    return types
