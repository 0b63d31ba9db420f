"""Event decoding: compile a BTF type once into one struct unpack plus a generated dict builder.

`compile_decoder(btf, type_id)` returns a `Decoder` whose `decode(data)` performs exactly one
precompiled `struct.unpack_from` and builds the result in a single generated expression:
integers of every width and sign, bools, floats, pointers (as ints), enums (as their names),
bitfields, char arrays (as strings, cut at the first NUL), other arrays (as lists), nested
structs (as dicts; anonymous members merge into their parent). Unions decode every member from
the same bytes, except where an enum field of the same struct names one of them (`op = MOUNT`
selects `mount`): then only that member is shown.

Display hints (`ebpm.loader.display`) change what a field becomes: `strings` (NUL-separated
strings as a list), `ip` (an address as text; inferred for 16-byte `*addr*` fields, with a
sibling `family` choosing v4 or v6), `hex`, `show` (of its union, only this member);
`strings` is inferred for a char array beside a `NAME_count` field (execsnoop's `args`). They
are keyed by field name or dotted path. An anonymous union of one address's views (`saddr_v4`
as `__u32`, `saddr_v6` as `__u8[16]`) reads as one address field (`saddr`), v4 or v6 by the
sibling family field.
"""

from __future__ import annotations

import struct

from ebpm.errors import LoadError
from ebpm.loader import display
from ebpm.loader.btf import INT_BOOL, INT_SIGNED, Btf, BtfType, Kind, Member
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["Decoder", "compile_decoder", "fields_of", "decode_str", "BatchDecoder",
           "batch_decoder"]

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}
_MAX_UNROLL = 4096  # array elements unrolled into one expression; beyond that, raw bytes


def decode_str(raw: bytes) -> str:
    return raw.partition(b"\0")[0].decode("utf-8", "replace")


@record
class Decoder:
    """A compiled decoder for one BTF type: `decode(bytes) -> dict` (or a scalar)."""

    type_name: str
    size: int
    fields: tuple[str, ...]  # top-level keys of the dict, in declaration order
    format: str  # the struct format it unpacks, for inspection and tests
    decode: Callable[[bytes], Any]
    source: str  # the generated Python source, for debugging
    widths: tuple[int, ...] = ()  # per field: the widest value its type can print (0: unknown)


_FAMILY_NAMES = ("family", "af", "sa_family", "ip_family", "ipver", "af_family")
_FAMILY = "\0family\0"  # placeholder, replaced by the sibling family field's expression


def _enum_slot(expr: str) -> str | None:
    """`v[N]` when `expr` ends as an enum field's does, `NAMES.get(v[N], v[N])`: its raw value
    (str methods, not a pattern: every run compiles its event's decoder on the way to its
    first event, where a pattern's compile cost ~0.5 ms)."""
    head, call, args = expr.rpartition(".get(")
    first, comma, second = args.removesuffix(")").partition(", ")
    if call and args.endswith(")") and comma and _is_slot(first) and _is_slot(second):
        return first
    return None


def _is_slot(text: str) -> bool:
    """`v[N]`: one value of the unpacked tuple."""
    digits = text.removeprefix("v[").removesuffix("]")
    return len(digits) + 3 == len(text) and digits.isascii() and digits.isdigit()


class _Builder:
    def __init__(self, btf: Btf, hints: Mapping[str, str] | None = None) -> None:
        self.btf = btf
        self.hints = dict(hints or {})
        self.fmt: list[str] = []
        self.pos = 0
        self.nvals = 0
        self.env: dict[str, Any] = {
            "_str": decode_str, "_from": int.from_bytes, "_strings": display.strings,
            "_ip": _ip, "_hex": display.hex_text, "_pick": _pick,
        }

    def hint(self, path: str, name: str) -> str:
        return self.hints.get(path) or self.hints.get(name) or ""

    def name(self, prefix: str, value: Any) -> str:
        key = f"{prefix}{len(self.env)}"
        self.env[key] = value
        return key

    def slot(self, offset: int, code: str, count: int, size: int) -> int:
        """Reserve `size` bytes at `offset` unpacked with `code` (yielding `count` values)."""
        if offset < self.pos:
            raise LoadError(f"decoder: overlapping fields at byte {offset}")
        if offset > self.pos:
            self.fmt.append(f"{offset - self.pos}x")
        self.fmt.append(code)
        self.pos = offset + size
        index = self.nvals
        self.nvals += count
        return index

    # -- expressions ---------------------------------------------------------------------------

    def value(self, type_id: int, offset: int) -> str | None:
        """A Python expression for the value of `type_id` at byte `offset` (None: nothing)."""
        t = self.btf.resolve(type_id)
        kind = t.kind
        if kind == Kind.INT:
            return self.integer(t, offset)
        if kind in (Kind.ENUM, Kind.ENUM64):
            i = self.slot(offset, _INT_CODES[(t.size, t.signed)], 1, t.size)
            names = self.name("_e", {m.value: m.name for m in t.members})
            return f"{names}.get(v[{i}], v[{i}])"
        if kind == Kind.PTR:
            return f"v[{self.slot(offset, 'Q', 1, 8)}]"
        if kind == Kind.FLOAT:
            code = {4: "f", 8: "d"}.get(t.size)
            if code is None:
                return f"v[{self.slot(offset, f'{t.size}s', 1, t.size)}]"
            return f"v[{self.slot(offset, code, 1, t.size)}]"
        if kind == Kind.ARRAY:
            return self.array(t, offset)
        if kind == Kind.STRUCT:
            return "{" + ", ".join(self.members(t, offset)) + "}"
        if kind == Kind.UNION:
            fn = self.name("_u", _union_decoder(self.btf, t))
            return f"{fn}(v[{self.slot(offset, f'{t.size}s', 1, t.size)}])"
        return None  # void, func, fwd: nothing to decode

    def integer(self, t: BtfType, offset: int) -> str:
        signed = bool(t.encoding & INT_SIGNED)
        if t.encoding & INT_BOOL and t.size == 1:
            return f"v[{self.slot(offset, '?', 1, 1)}]"
        code = _INT_CODES.get((t.size, signed))
        if code is None:  # __int128 and friends
            i = self.slot(offset, f"{t.size}s", 1, t.size)
            return f"_from(v[{i}], 'little', signed={signed})"
        return f"v[{self.slot(offset, code, 1, t.size)}]"

    def array(self, t: BtfType, offset: int) -> str | None:
        if t.nelems == 0:
            return None  # flexible array member: no bytes of its own
        elem = self.btf.resolve(t.type)
        elem_size = self.btf.sizeof(t.type)
        total = elem_size * t.nelems
        if elem.kind == Kind.INT and elem.name == "char":
            i = self.slot(offset, f"{t.nelems}s", 1, total)
            return f"v[{i}].partition(b'\\0')[0].decode('utf-8', 'replace')"  # inline: no call
        scalar = None
        if elem.kind == Kind.INT and not elem.encoding & INT_BOOL:
            scalar = _INT_CODES.get((elem.size, bool(elem.encoding & INT_SIGNED)))
        elif elem.kind == Kind.FLOAT:
            scalar = {4: "f", 8: "d"}.get(elem.size)
        elif elem.kind == Kind.PTR:
            scalar = "Q"
        if scalar is not None:
            i = self.slot(offset, f"{t.nelems}{scalar}", t.nelems, total)
            return f"list(v[{i}:{i + t.nelems}])"
        if t.nelems > _MAX_UNROLL:
            return f"v[{self.slot(offset, f'{total}s', 1, total)}]"
        items = [self.value(t.type, offset + k * elem_size) for k in range(t.nelems)]
        return "[" + ", ".join(x or "None" for x in items) + "]"

    def members(self, t: BtfType, base: int, prefix: str = "") -> list[str]:
        """'"name": expr' items of a struct; anonymous members merge into the parent."""
        return self.members_of(list(t.members), base, prefix)

    def members_of(self, members: list[Member], base: int, prefix: str = "",
                   outermost: bool = True) -> list[str]:
        """The items of `members` at `base`; a sibling family field is filled in at the
        outermost level (a union's shown member defers it to its struct)."""
        out: list[str] = []
        siblings = frozenset(x.name for x in members if x.name)
        family = ""  # expression of a sibling address-family field
        selector: tuple[str, dict[int, str]] | None = None  # (expression, enum names)
        k = 0
        while k < len(members):
            m = members[k]
            if m.bitfield_size:
                run = [m]
                while k + 1 < len(members) and members[k + 1].bitfield_size:
                    k += 1
                    run.append(members[k])
                out.extend(self.bitfields(run, base))
                k += 1
                continue
            offset = base + m.bit_offset // 8
            mt = self.btf.resolve(m.type)
            if not m.name and mt.kind == Kind.STRUCT:
                out.extend(self.members_of(list(mt.members), offset, prefix, False))
            elif not m.name and mt.kind == Kind.UNION:
                shown = _shown_member(self.btf, mt, self.hints, prefix)
                stem = _address_union(self.btf, mt) if shown is None else None
                if shown is not None:
                    out.extend(self.members_of([shown], offset, prefix, False))
                elif stem is not None:
                    i = self.slot(offset, f"{mt.size}s", 1, mt.size)
                    out.append(f"{stem!r}: _ip(v[{i}], {_FAMILY!r})")
                else:
                    out.append(f"**{self.union(mt, offset, selector, prefix)}")
            elif m.name:
                path = prefix + m.name
                expr = self.hinted(m, mt, offset, path, siblings)
                if expr is None and mt.kind == Kind.STRUCT:
                    expr = "{" + ", ".join(self.members(mt, offset, path + ".")) + "}"
                elif expr is None and mt.kind == Kind.UNION:
                    shown = _shown_member(self.btf, mt, self.hints, path + ".")
                    if shown is not None:
                        items = self.members_of([shown], offset, path + ".")
                        expr = "{" + ", ".join(items) + "}"
                if expr is None:
                    expr = self.value(m.type, offset)
                if expr is not None:
                    if m.name in _FAMILY_NAMES and mt.kind == Kind.INT:
                        family = expr
                    enum_slot = _enum_slot(expr)
                    if enum_slot and mt.kind in (Kind.ENUM, Kind.ENUM64) and selector is None:
                        selector = (enum_slot, {e.value: e.name for e in mt.members})
                    out.append(f"{m.name!r}: {expr}")
            k += 1
        if not outermost and not family:
            return out
        return [item.replace(repr(_FAMILY), family or "None") for item in out]

    def hinted(self, m: Member, mt: BtfType, offset: int, path: str,
               siblings: frozenset[str] = frozenset()) -> str | None:
        """The expression of a field with a display hint (declared or inferred), or None."""
        size = self.btf.sizeof(m.type)
        hint = self.hint(path, m.name)
        if hint == "show":  # picks the member of its union; how it reads is inferred
            hint = ""
        if not hint and display.looks_like_address(m.name, size) and mt.kind in (
            Kind.INT, Kind.ARRAY
        ):
            hint = "ip"
        if not hint and mt.kind == Kind.ARRAY and siblings & {f"{m.name}_count", f"{m.name}_cnt"}:
            elem = self.btf.resolve(mt.type)  # char args[N] beside args_count: argv-like
            hint = "strings" if elem.kind == Kind.INT and elem.name == "char" else ""
        if not hint and mt.kind == Kind.ARRAY and size == 4 and "addr" in m.name.lower():
            elem = self.btf.resolve(mt.type)
            hint = "ip" if elem.kind == Kind.INT and elem.size == 1 else ""
        if hint in ("", "str"):
            return None
        if hint == "hex":
            inner = self.value(m.type, offset)
            return f"_hex({inner})" if inner is not None else None
        i = self.slot(offset, f"{size}s", 1, size)
        if hint == "strings":
            return f"_strings(v[{i}])"
        return f"_ip(v[{i}], {_FAMILY!r})"  # "ip"

    def union(self, t: BtfType, offset: int, selector: tuple[str, dict[int, str]] | None,
              prefix: str) -> str:
        fn = self.name("_u", _union_decoder(self.btf, t))
        raw = f"v[{self.slot(offset, f'{t.size}s', 1, t.size)}]"
        names = [m.name for m in t.members if m.name]
        if selector is not None:
            expr, enum_names = selector
            choice = {value: display.union_member(name, names)
                      for value, name in enum_names.items()}
            if any(choice.values()):
                table = self.name("_c", {v: c for v, c in choice.items() if c})
                return f"_pick({fn}({raw}), {table}.get({expr}))"
        return f"{fn}({raw})"

    def bitfields(self, run: list[Member], base: int) -> list[str]:
        first = min(m.bit_offset for m in run)
        last = max(m.bit_offset + m.bitfield_size for m in run)
        lo, hi = first // 8, (last + 7) // 8
        width = hi - lo
        if width in _UNSIGNED:
            raw = f"v[{self.slot(base + lo, _UNSIGNED[width], 1, width)}]"
        else:
            raw = f"_from(v[{self.slot(base + lo, f'{width}s', 1, width)}], 'little')"
        out = []
        for m in run:
            if not m.name:
                continue  # padding bitfield (`int :3;`)
            shift = m.bit_offset - lo * 8
            mask = (1 << m.bitfield_size) - 1
            expr = f"(({raw} >> {shift}) & {mask:#x})"
            mt = self.btf.resolve(m.type)
            if mt.kind == Kind.INT and mt.encoding & INT_BOOL:
                expr = f"bool{expr}"
            elif mt.kind == Kind.INT and mt.encoding & INT_SIGNED or (
                mt.kind in (Kind.ENUM, Kind.ENUM64) and mt.signed
            ):
                sign = 1 << (m.bitfield_size - 1)
                expr = f"(({expr} ^ {sign:#x}) - {sign:#x})"
            if mt.kind in (Kind.ENUM, Kind.ENUM64):
                names = self.name("_e", {e.value: e.name for e in mt.members})
                expr = f"{names}.get({expr}, {expr})"
            out.append(f"{m.name!r}: {expr}")
        return out


# compiled on first use (re's cache), for a union of addresses: not on every run's way
_ADDRESS_SUFFIX = r"_?(v4|v6|ipv4|ipv6|in4|in6|4|6)$"


def _address_union(btf: Btf, t: BtfType) -> str | None:
    """The one name an anonymous union of one address's views reads as (`saddr_v4` __u32 /
    `saddr_v6` __u8[16] or `unsigned __int128` -> `saddr`), or None: every member 4 or 16
    bytes of integers, at least one of 16, all named alike but for a v4/v6 suffix."""
    if t.size != 16 or len(t.members) < 2:
        return None
    stems = set()
    for m in t.members:
        if not m.name or m.bitfield_size:
            return None
        mt = btf.resolve(m.type)
        elem = btf.resolve(mt.type) if mt.kind == Kind.ARRAY else mt
        if elem.kind != Kind.INT or btf.sizeof(m.type) not in (4, 16):
            return None
        import re  # (a union of addresses only)

        stems.add(re.sub(_ADDRESS_SUFFIX, "", m.name, flags=re.IGNORECASE))
    if len(stems) != 1 or not any(btf.sizeof(m.type) == 16 for m in t.members):
        return None
    stem = stems.pop()
    return stem if stem else None


def _shown_member(btf: Btf, t: BtfType, hints: Mapping[str, str], prefix: str) -> Member | None:
    """The member of union `t` the package's `show` hint names (by name or dotted path; a
    field of an anonymous member names that member), or None."""
    def shown(name: str) -> bool:
        return hints.get(prefix + name) == "show" or hints.get(name) == "show"

    for m in t.members:
        if m.name and shown(m.name):
            return m
        if not m.name:
            mt = btf.resolve(m.type)
            if mt.kind in (Kind.STRUCT, Kind.UNION) and any(
                shown(name) for name, _ in _top_level(btf, mt, hints)
            ):
                return m
    return None


def _ip(raw: bytes, family: int | None) -> str:
    return display.ip_text(raw, family if family in (display.AF_INET, display.AF_INET6) else None)


def _pick(values: dict[str, Any], member: str | None) -> dict[str, Any]:
    """Only the union member the discriminating enum names (all of them when none does)."""
    if member is None or member not in values:
        return values
    return {member: values[member]}


def _union_decoder(btf: Btf, t: BtfType) -> Callable[[bytes], dict[str, Any]]:
    parts = []
    for m in t.members:
        if m.bitfield_size:
            continue
        sub = compile_decoder(btf, m.type)
        parts.append((m.name, sub.decode, btf.resolve(m.type)))

    def decode(raw: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, fn, mt in parts:
            value = fn(raw)
            if not name and isinstance(value, dict):
                out.update(value)
            elif name:
                out[name] = value
            del mt
        return out

    return decode


def compile_decoder(btf: Btf, type_id: int, hints: Mapping[str, str] | None = None) -> Decoder:
    """Compile the decoder for `type_id` (usually the event struct) of `btf`; `hints` maps
    field names (or dotted paths) to display hints (`strings`, `ip`, `hex`, `str`)."""
    t = btf.resolve(type_id)
    size = btf.sizeof(type_id)
    b = _Builder(btf, hints)
    if t.kind == Kind.STRUCT:
        items = b.members(t, 0)
        expr = "{" + ", ".join(items) + "}"
        columns = _top_level(btf, t, hints)
        fields = tuple(name for name, _ in columns)
        widths = tuple(width for _, width in columns)
    else:
        expr = b.value(type_id, 0) or "None"
        fields, widths = (), ()
    if b.pos < size:
        b.fmt.append(f"{size - b.pos}x")
    fmt = "<" + "".join(b.fmt)
    unpacker = struct.Struct(fmt)
    if unpacker.size != size:
        raise LoadError(
            f"decoder for {btf.type_name(type_id)}: format covers {unpacker.size} bytes, "
            f"the type has {size}"
        )
    b.env["_unpack"] = unpacker.unpack_from
    b.env["_size"] = size
    source = (
        "def decode(data):\n"
        "    if len(data) < _size:\n"
        "        data = bytes(data).ljust(_size, b'\\0')\n"
        "    v = _unpack(data)\n"
        f"    return {expr}\n"
    )
    decode = _define(source, f"<decoder {btf.type_name(type_id)}>", b.env)
    return Decoder(btf.type_name(type_id), size, fields, fmt, decode, source, widths)


def fields_of(btf: Btf, type_id: int) -> tuple[str, ...]:
    """The top-level keys `compile_decoder(btf, type_id).fields` would have, without compiling
    it (() for a type that is no struct, or no type: 0)."""
    if not type_id:
        return ()
    t = btf.resolve(type_id)
    return tuple(name for name, _ in _top_level(btf, t)) if t.kind == Kind.STRUCT else ()


def _value_width(btf: Btf, type_id: int) -> int:
    """How many characters the widest value of this type prints as (0 when unbounded)."""
    t = btf.resolve(type_id)
    if t.kind == Kind.INT:
        if t.encoding & INT_BOOL:
            return 5
        bits = 8 * t.size
        return len(str(-(2 ** (bits - 1)))) if t.encoding & INT_SIGNED else len(str(2**bits - 1))
    if t.kind == Kind.ARRAY:
        elem = btf.resolve(t.type)
        if elem.kind == Kind.INT and elem.size == 1:  # a string: as wide as it can be, up to 32
            return min(max(t.nelems - 1, 1), 32)
    return 0


def _top_level(btf: Btf, t: BtfType,
               hints: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
    """The dict's top-level keys in declaration order (anonymous members flattened: a union
    of one address's views as its one name, a union with a shown member as that member),
    each with the widest value its type can print."""
    out: list[tuple[str, int]] = []
    for m in t.members:
        mt = btf.resolve(m.type)
        if not m.name and mt.kind == Kind.UNION:
            shown = _shown_member(btf, mt, hints or {}, "")
            stem = _address_union(btf, mt) if shown is None else None
            if shown is not None and shown.name:
                out.append((shown.name, _value_width(btf, shown.type)))
            elif shown is not None:
                out.extend(_top_level(btf, btf.resolve(shown.type), hints))
            elif stem is not None:
                out.append((stem, 39))  # the longest IPv6 text
            else:
                out.extend(_top_level(btf, mt, hints))
        elif not m.name and mt.kind == Kind.STRUCT:
            out.extend(_top_level(btf, mt, hints))
        elif m.name and not (mt.kind == Kind.ARRAY and mt.nelems == 0):
            out.append((m.name, _value_width(btf, m.type)))
    return out


RING_HEADER = 8  # a BPF ring buffer record's header: u32 length (busy, discard bits), u32 pg_off
# a perf buffer's sample (PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW, as bpf_perf_event_output
# writes): struct perf_event_header (u32 type, u16 misc, u16 size), then u32 raw size
PERF_HEADER = 12
PERF_RECORD_SAMPLE = 9


@record
class BatchDecoder:
    """Decodes a run of records of one type in one pass: `decode(buf, want)` walks `buf`
    (records back to back, each `stride` bytes: header, record, padding to 8) with one
    `struct.iter_unpack` and returns the dicts of the leading records whose header is `want`
    and stops at the first other one. A ring buffer's (`perf=False`): `want` is the record's
    length, neither busy nor discarded. A perf buffer's (`perf=True`): `want` is
    PERF_RECORD_SAMPLE, and the record's size must be `stride` (a sample of this type)."""

    type_name: str
    size: int
    stride: int
    decode: Callable[[Any, int], list[Any]]
    source: str
    perf: bool = False


def batch_decoder(btf: Btf, type_id: int, hints: Mapping[str, str] | None = None, *,
                  perf: bool = False) -> BatchDecoder:
    """The batch form of `compile_decoder(btf, type_id)` for records read straight from a
    ring buffer's memory (ebpm.loader.libbpf.ringbuf), or a perf buffer's (`perf`:
    ebpm.loader.libbpf.perfbuf): the same values, without a Python call or a bytes copy per
    record."""
    t = btf.resolve(type_id)
    size = btf.sizeof(type_id)
    b = _Builder(btf, hints)
    b.slot(0, "I", 1, 4)  # the ring's length, the perf record's type
    if perf:
        header = PERF_HEADER
        stride = 8 + ((4 + size + 7) & ~7)  # the raw size: u32 and data, padded to 8
        b.slot(6, "H", 1, 2)  # the perf record's size
        check = f"v[0] != want or v[1] != {stride}"
    else:
        header = RING_HEADER
        stride = (RING_HEADER + size + 7) & ~7
        check = "v[0] != want"
    if t.kind == Kind.STRUCT:
        expr = "{" + ", ".join(b.members(t, header)) + "}"
    else:
        expr = b.value(type_id, header) or "None"
    if b.pos < stride:
        b.fmt.append(f"{stride - b.pos}x")
    unpacker = struct.Struct("<" + "".join(b.fmt))
    if unpacker.size != stride:
        raise LoadError(f"batch decoder for {btf.type_name(type_id)}: format covers "
                        f"{unpacker.size} bytes, the record takes {stride}")
    b.env["_iter"] = unpacker.iter_unpack
    source = (
        "def decode(buf, want):\n"
        "    out = []\n"
        "    append = out.append\n"
        "    for v in _iter(buf):\n"
        f"        if {check}:\n"
        "            break\n"
        f"        append({expr})\n"
        "    return out\n"
    )
    decode = _define(source, f"<batch decoder {btf.type_name(type_id)}>", b.env)
    return BatchDecoder(btf.type_name(type_id), size, stride, decode, source, perf)


def _define(source: str, filename: str, env: Mapping[str, Any]) -> Callable[..., Any]:
    """The function `decode` that `source` defines with the names in `env`, its code named
    `filename` (in tracebacks). The text is given to exec() as it is: the builtin compile() (the
    way to give a filename) makes the `ast` module's node types on its first call in a process,
    1.2 ms of a run's way to its first event (CPython 3.11), and exec() of a text does not."""
    namespace = dict(env)
    exec(source, namespace)  # noqa: S102 - the source made above
    decode = namespace["decode"]
    decode.__code__ = decode.__code__.replace(co_filename=filename)
    return decode
