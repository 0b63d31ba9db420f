"""A pure-Python reader of BTF (the BPF Type Format) as found in a `.BTF` section or raw file."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ebpm.errors import BuildError

__all__ = ["Member", "BtfType", "Btf", "KIND_NAMES"]

BTF_MAGIC = 0xEB9F

KIND_NAMES = {
    0: "UNKN", 1: "INT", 2: "PTR", 3: "ARRAY", 4: "STRUCT", 5: "UNION", 6: "ENUM", 7: "FWD",
    8: "TYPEDEF", 9: "VOLATILE", 10: "CONST", 11: "RESTRICT", 12: "FUNC", 13: "FUNC_PROTO",
    14: "VAR", 15: "DATASEC", 16: "FLOAT", 17: "DECL_TAG", 18: "TYPE_TAG", 19: "ENUM64",
}
_MODIFIERS = {"TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"}

INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4


@dataclass(frozen=True)
class Member:
    """A struct/union member, enum value, function parameter or datasec entry."""

    name: str
    type: int = 0  # referenced type id (members, params, datasec entries)
    offset: int = 0  # bit offset (members), byte offset (datasec entries)
    size: int = 0  # byte size (datasec entries); enum value for enums


@dataclass(frozen=True)
class BtfType:
    """One BTF type. `size` for sized kinds, `ref` for kinds that point to another type."""

    id: int
    kind: str
    name: str
    size: int = 0
    ref: int = 0
    kind_flag: bool = False
    members: tuple[Member, ...] = ()
    encoding: int = 0  # INT: BTF_INT_SIGNED / CHAR / BOOL
    bits: int = 0  # INT: number of bits
    nelems: int = 0  # ARRAY
    linkage: int = 0  # VAR / FUNC


class Btf:
    """All types of one BTF blob, by id (id 0 is void)."""

    def __init__(self, data: bytes, *, where: str = "BTF") -> None:
        self.where = where
        if len(data) < 24:
            raise BuildError(f"{where}: BTF too short")
        magic_le = struct.unpack_from("<H", data, 0)[0]
        if magic_le == BTF_MAGIC:
            e = "<"
        elif struct.unpack_from(">H", data, 0)[0] == BTF_MAGIC:
            e = ">"
        else:
            raise BuildError(f"{where}: bad BTF magic")
        hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIIII", data, 4)
        types_start = hdr_len + type_off
        strs_start = hdr_len + str_off
        if types_start + type_len > len(data) or strs_start + str_len > len(data):
            raise BuildError(f"{where}: BTF sections run past the end of the data")
        strings = data[strs_start : strs_start + str_len]
        self.types: list[BtfType] = [BtfType(0, "VOID", "")]
        try:
            self._parse(data[types_start : types_start + type_len], strings, e)
        except struct.error as err:
            raise BuildError(f"{where}: truncated BTF type data ({err})") from err
        self._by_name: dict[str, list[BtfType]] = {}
        for t in self.types:
            if t.name:
                self._by_name.setdefault(t.name, []).append(t)

    @staticmethod
    def _str(strings: bytes, off: int) -> str:
        end = strings.find(b"\0", off)
        return strings[off : end if end >= 0 else len(strings)].decode("utf-8", "replace")

    def _parse(self, blob: bytes, strings: bytes, e: str) -> None:
        pos = 0
        u32 = struct.Struct(e + "I")
        three = struct.Struct(e + "III")
        two = struct.Struct(e + "Ii")
        while pos + 12 <= len(blob):
            name_off, info, size_type = three.unpack_from(blob, pos)
            pos += 12
            kind_no = (info >> 24) & 0x1F
            kind = KIND_NAMES.get(kind_no)
            if kind is None:
                raise BuildError(f"{self.where}: unknown BTF kind {kind_no}")
            vlen = info & 0xFFFF
            kflag = bool(info >> 31)
            name = self._str(strings, name_off)
            tid = len(self.types)
            t: BtfType
            if kind == "INT":
                (extra,) = u32.unpack_from(blob, pos)
                pos += 4
                t = BtfType(tid, kind, name, size=size_type, encoding=(extra >> 24) & 0xF,
                            bits=extra & 0xFF)
            elif kind == "ARRAY":
                elem, _index, nelems = three.unpack_from(blob, pos)
                pos += 12
                t = BtfType(tid, kind, name, ref=elem, nelems=nelems)
            elif kind in ("STRUCT", "UNION"):
                members = []
                for _ in range(vlen):
                    m_name, m_type, m_off = three.unpack_from(blob, pos)
                    pos += 12
                    bit_off = m_off & 0xFFFFFF if kflag else m_off
                    members.append(Member(self._str(strings, m_name), m_type, bit_off))
                t = BtfType(tid, kind, name, size=size_type, kind_flag=kflag,
                            members=tuple(members))
            elif kind == "ENUM":
                values = []
                for _ in range(vlen):
                    v_name, v_val = two.unpack_from(blob, pos)
                    pos += 8
                    values.append(Member(self._str(strings, v_name), size=v_val))
                t = BtfType(tid, kind, name, size=size_type, members=tuple(values))
            elif kind == "ENUM64":
                values = []
                for _ in range(vlen):
                    v_name, lo, hi = three.unpack_from(blob, pos)
                    pos += 12
                    values.append(Member(self._str(strings, v_name), size=(hi << 32) | lo))
                t = BtfType(tid, kind, name, size=size_type, members=tuple(values))
            elif kind == "FUNC_PROTO":
                params = []
                for _ in range(vlen):
                    p_name, p_type = struct.unpack_from(e + "II", blob, pos)
                    pos += 8
                    params.append(Member(self._str(strings, p_name), p_type))
                t = BtfType(tid, kind, name, ref=size_type, members=tuple(params))
            elif kind == "VAR":
                (linkage,) = u32.unpack_from(blob, pos)
                pos += 4
                t = BtfType(tid, kind, name, ref=size_type, linkage=linkage)
            elif kind == "DATASEC":
                entries = []
                for _ in range(vlen):
                    v_type, v_off, v_size = three.unpack_from(blob, pos)
                    pos += 12
                    entries.append(Member("", v_type, v_off, v_size))
                t = BtfType(tid, kind, name, size=size_type, members=tuple(entries))
            elif kind == "DECL_TAG":
                pos += 4
                t = BtfType(tid, kind, name, ref=size_type)
            elif kind in ("FLOAT",):
                t = BtfType(tid, kind, name, size=size_type)
            elif kind == "FUNC":
                t = BtfType(tid, kind, name, ref=size_type, linkage=vlen)
            else:  # PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
                t = BtfType(tid, kind, name, ref=size_type, kind_flag=kflag)
            self.types.append(t)

    def __getitem__(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise BuildError(f"{self.where}: BTF type id {type_id} out of range")
        return self.types[type_id]

    def named(self, name: str, *kinds: str) -> BtfType | None:
        """The first type called `name` (of one of `kinds`, when given)."""
        for t in self._by_name.get(name, ()):
            if not kinds or t.kind in kinds:
                return t
        return None

    def has_type(self, name: str) -> bool:
        """Whether a complete struct/union/enum/typedef of this name is defined."""
        return self.named(name, "STRUCT", "UNION", "ENUM", "ENUM64", "TYPEDEF") is not None

    def strip_modifiers(self, type_id: int, *, typedefs: bool = True) -> BtfType:
        """Follow const/volatile/restrict/type-tag (and typedefs) to the underlying type."""
        t = self[type_id]
        seen = 0
        while t.kind in _MODIFIERS and (typedefs or t.kind != "TYPEDEF"):
            t = self[t.ref]
            seen += 1
            if seen > 64:
                raise BuildError(f"{self.where}: BTF modifier loop at type {type_id}")
        return t

    def qualifiers(self, type_id: int) -> set[str]:
        """The qualifiers (CONST, VOLATILE, ...) met before the first non-modifier type."""
        out: set[str] = set()
        t = self[type_id]
        for _ in range(64):
            if t.kind not in _MODIFIERS:
                return out
            out.add(t.kind)
            t = self[t.ref]
        raise BuildError(f"{self.where}: BTF modifier loop at type {type_id}")

    def type_name(self, type_id: int) -> str:
        """A readable name: the first named type through modifiers (`u32`, `event`), or ''."""
        t = self[type_id]
        for _ in range(64):
            if t.name:
                return t.name
            if t.kind in _MODIFIERS:
                t = self[t.ref]
                continue
            return ""
        return ""

    def size_of(self, type_id: int, *, _depth: int = 0) -> int:
        """The byte size of a type (arrays multiplied out, pointers 8)."""
        if _depth > 32:
            raise BuildError(f"{self.where}: BTF array nesting too deep at type {type_id}")
        t = self.strip_modifiers(type_id)
        if t.kind == "ARRAY":
            return t.nelems * self.size_of(t.ref, _depth=_depth + 1)
        if t.kind == "PTR":
            return 8
        return t.size
