"""Display hints: how a decoded field or map reads best, declared by a package or inferred from BTF.

What BTF cannot say, a package declares in ebpm.toml `[display]` (carried in the config as
`PackageConfig.display`): the histogram unit, which maps hold results, and per-field hints —
`strings` (a char array holding NUL-separated strings, such as an exec argument list), `ip`
(an address in 4 or 16 bytes or an `__int128`), `hex` (bytes or integers as hex), `show` (of
its union, only this member). What BTF does say is inferred: a 16-byte field named `*addr` is
an address, an anonymous union of one address's v4/v6 views is one address, a union next to an
enum whose value names its members shows that member only, a map of start timestamps is scratch.
Pure functions; the decoder compiles them into its generated code.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


__all__ = [
    "strings", "ip_text", "hex_text", "union_member",
    "is_scratch_map", "unit_for", "looks_like_address", "AF_INET", "AF_INET6",
]

AF_INET, AF_INET6 = 2, 10

# the words (between underscores, in any case) that name a scratch map (str methods, not a
# pattern: its compile took ~1 ms of `ebpm run`'s start, while libbpf loads)
_SCRATCH_WORDS = frozenset((
    "start", "starts", "ts", "tstamp", "stamp", "time", "entry", "entries", "args", "pending",
    "inflight", "infly", "tmp", "temp", "heap", "scratch", "stash", "execs", "values",
    "currsock", "sockets", "birth"))


# -- values ------------------------------------------------------------------------------------


def strings(raw: bytes) -> list[str]:
    """NUL-separated strings (an argv copied back to back); trailing empty ones dropped."""
    parts = raw.split(b"\0")
    while parts and not parts[-1]:
        parts.pop()
    return [p.decode("utf-8", "replace") for p in parts]


def ip_text(raw: bytes, family: int | None = None) -> str:
    """An address from its network-order bytes: IPv4 from the first 4 of 16 when `family`
    says AF_INET (or, without a family, when the other 12 are zero)."""
    import ipaddress  # (here: `ebpm run` of a tool without addresses never imports it)

    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if len(raw) != 16:
        return raw.hex()
    if family == AF_INET or (family is None and not any(raw[4:])):
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw))


def hex_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, list):
        return bytes(v & 0xFF for v in value).hex()
    if isinstance(value, int):
        return hex(value)
    return str(value)


def looks_like_address(name: str, size: int) -> bool:
    """A field the BTF alone marks as an address: `*addr*` of 16 bytes (v4 or v6)."""
    return size == 16 and "addr" in name.lower()


def union_member(enum_value: str, members: Sequence[str]) -> str | None:
    """The union member an enum value selects (`MOUNT` -> `mount`, `OP_UMOUNT` -> `umount`,
    `SYS_FSOPEN` -> `fsopen`), or None when none matches."""
    value = enum_value.lower()
    for m in members:
        low = m.lower()
        if value == low or value.endswith("_" + low):
            return m
    return None


# -- maps --------------------------------------------------------------------------------------


def is_scratch_map(name: str) -> bool:
    """A map kept between two hooks (start timestamps, saved arguments, per-thread state), not
    a result: named like one (`start`, `execs`, `args`, `inflight`...)."""
    return any(word in _SCRATCH_WORDS for word in name.lower().split("_"))


def unit_for(declared: str, args: Mapping[str, Any]) -> str:
    """The histogram unit: the package's declaration, switched by a set flag that names
    another unit (`targ_ms` -> msecs, `targ_ns`/`nanoseconds` -> nsecs). Undeclared, a program
    with such a flag counts microseconds unless it is set (libbpf-tools' runqlat, biolatency,
    cpudist, hardirqs...); without one, "value"."""
    switches = [name for name, value in args.items() if isinstance(value, bool)
                and name.lower().endswith(("_ms", "milliseconds", "_ns", "nanoseconds"))]
    unit = declared or ("usecs" if switches else "value")
    for name, value in args.items():
        if value is not True:
            continue
        low = name.lower()
        if low.endswith(("_ms", "milliseconds")):
            unit = "msecs"
        elif low.endswith(("_ns", "nanoseconds")):
            unit = "nsecs"
        elif low.endswith(("_us", "microseconds")) and unit in ("value", "nsecs", "msecs"):
            unit = "usecs"
    return unit
