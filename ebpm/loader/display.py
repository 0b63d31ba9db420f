"""Display hints: how a decoded field or map reads best, declared by a package or inferred from BTF.

What BTF cannot say, a package declares in ebpm.toml `[display]` (carried in the config as
`PackageConfig.display`): the histogram unit, which maps hold results, and per-field hints —
`strings` (a char array holding NUL-separated strings, such as an exec argument list), `ip`
(an address in 4 or 16 bytes or an `__int128`), `hex` (bytes or integers as hex). What BTF does
say is inferred: a 16-byte field named `*addr` is an address, a union next to an enum whose
value names its members shows that member only, a map of start timestamps is scratch.
Pure functions; the decoder compiles them into its generated code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ebpm.errors import ManifestError

__all__ = [
    "FIELD_HINTS", "UNITS", "check_display", "strings", "ip_text", "hex_text", "union_member",
    "is_scratch_map", "unit_for", "looks_like_address", "AF_INET", "AF_INET6",
]

FIELD_HINTS = ("strings", "ip", "hex", "str")
UNITS = ("usecs", "msecs", "nsecs", "secs", "bytes", "kbytes", "sectors", "value", "count")
AF_INET, AF_INET6 = 2, 10

_SCRATCH = re.compile(
    r"(^|_)(start|starts|ts|tstamp|stamp|time|entry|entries|args|pending|inflight|infly|"
    r"tmp|temp|heap|scratch|stash|execs|values|currsock|sockets|birth)(_|$)",
    re.IGNORECASE,
)


def check_display(data: Any, *, where: str) -> dict[str, Any]:
    """Validate ebpm.toml's `[display]` table (or the config's `display`): {unit, results,
    fields}; returns it normalized (empty keys dropped)."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: [display] must be a table")
    unknown = sorted(set(data) - {"unit", "results", "fields"})
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) in [display]: {', '.join(unknown)}",
                            hint="known: unit, results, fields")
    out: dict[str, Any] = {}
    unit = data.get("unit", "")
    if not isinstance(unit, str):
        raise ManifestError(f"{where}: [display] unit must be a string such as \"usecs\"")
    if unit:
        out["unit"] = unit
    results = data.get("results", [])
    if not isinstance(results, list) or not all(isinstance(r, str) for r in results):
        raise ManifestError(f"{where}: [display] results must be a list of map names")
    if results:
        out["results"] = list(results)
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        raise ManifestError(f"{where}: [display.fields] must be a table of FIELD = HINT")
    for name, hint in fields.items():
        if hint not in FIELD_HINTS:
            raise ManifestError(
                f"{where}: [display.fields] {name} = {hint!r} is not a hint",
                hint="hints: " + ", ".join(FIELD_HINTS))
    if fields:
        out["fields"] = dict(sorted(fields.items()))
    return out


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


def is_scratch_map(name: str, value_fields: Iterable[str] | None) -> bool:
    """A map kept between two hooks (start timestamps, saved arguments), not a result: named
    like one, or holding a bare integer (no struct value) under a scratch-like name."""
    del value_fields
    return bool(_SCRATCH.search(name))


def unit_for(declared: str, args: Mapping[str, Any]) -> str:
    """The histogram unit: the package's declaration, switched by a set flag that names
    another unit (`targ_ms` -> msecs, `targ_ns`/`nanoseconds` -> nsecs); "value" by default."""
    unit = declared or "value"
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
