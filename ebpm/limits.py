"""Caps and deadlines that keep a hostile registry, mirror or archive from exhausting ebpm.

Every cap has a default that no honest package comes near and an environment variable that
raises (or lowers) it. Sizes accept a K/M/G suffix (powers of 1024): `EBPM_MAX_PACKAGE_SIZE=1G`.

| variable | default | what it bounds |
| --- | --- | --- |
| EBPM_MAX_PACKAGE_SIZE | 256M | config + layers of one package (and of one signature) |
| EBPM_MAX_MANIFEST_SIZE | 4M | one manifest |
| EBPM_MAX_TAGS_SIZE | 4M | one page of a tag list or catalog (decompressed) |
| EBPM_MAX_ERROR_BODY | 64K | what is read of an error answer (the rest is dropped) |
| EBPM_MAX_RESPONSE_SIZE | 1M | any other small answer (tokens, upload answers) |
| EBPM_MAX_ARCHIVE_SIZE | 1G | the decompressed contents of a saved archive (`ebpm load`) |
| EBPM_MAX_ARCHIVE_MEMBERS | 10000 | the number of files in such an archive |
| EBPM_MAX_SIGNATURE_LAYERS | 16 | the layers of one signature manifest |
| EBPM_MAX_REFERRERS | 1000 | the entries of one package's referrers list (all its pages) |
| EBPM_MAX_URL_SIZE | 64M | an object fetched by URL (`ebpm run https://…`) |
| EBPM_TRANSFER_DEADLINE | 600 | seconds one HTTP exchange may take, whatever its speed |
| EBPM_MIN_RATE | 1K | bytes/s an exchange must average once its first 10 s are over |
"""

from __future__ import annotations

import os

from ebpm.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Limits", "limits", "parse_size", "human_size"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class _Int:
    """A cap in bytes or a count: read from its environment variable when asked for."""

    __slots__ = ("var", "default", "parse")

    def __init__(self, var: str, default: int, parse: Callable[[str, str], float]) -> None:
        self.var, self.default, self.parse = var, default, parse

    def __get__(self, obj: object, owner: type | None = None) -> int:
        return int(_read(self.var, self.default, self.parse))


class _Float:
    """A cap in seconds: read from its environment variable when asked for."""

    __slots__ = ("var", "default", "parse")

    def __init__(self, var: str, default: float, parse: Callable[[str, str], float]) -> None:
        self.var, self.default, self.parse = var, default, parse

    def __get__(self, obj: object, owner: type | None = None) -> float:
        return _read(self.var, self.default, self.parse)


_PARSED: dict[tuple[str, str], float] = {}  # (variable, text) -> value: parsed once


def _read(var: str, default: float, parse: Callable[[str, str], float]) -> float:
    text = os.environ.get(var)
    if not text:
        return default
    found = _PARSED.get((var, text))
    if found is None:
        value = text.strip()
        found = _PARSED[var, text] = parse(value, var) if value else default
    return found


def _size(text: str, var: str) -> float:
    return parse_size(text, what=var)


def _count(text: str, var: str) -> float:
    if not text.isdigit():
        raise UsageError(f"{var}: {text!r} is not a count", hint="write a whole number")
    return int(text)


def _seconds(text: str, var: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(f"{var}: {text!r} is not a number of seconds",
                         hint="write a positive number, e.g. 600")
    return seconds


class Limits:
    """The caps in force (bytes, counts, seconds). Each is read from its environment variable
    when it is asked for, so a change (a test's, a long-lived caller's) is seen at once; a
    transfer asks at every request, so each reads one variable (not all of them), and a value
    is parsed once."""

    __slots__ = ()

    package_size = _Int("EBPM_MAX_PACKAGE_SIZE", 256 << 20, _size)
    manifest_size = _Int("EBPM_MAX_MANIFEST_SIZE", 4 << 20, _size)
    tags_size = _Int("EBPM_MAX_TAGS_SIZE", 4 << 20, _size)
    error_body = _Int("EBPM_MAX_ERROR_BODY", 64 << 10, _size)
    response_size = _Int("EBPM_MAX_RESPONSE_SIZE", 1 << 20, _size)
    archive_size = _Int("EBPM_MAX_ARCHIVE_SIZE", 1 << 30, _size)
    archive_members = _Int("EBPM_MAX_ARCHIVE_MEMBERS", 10_000, _count)
    signature_layers = _Int("EBPM_MAX_SIGNATURE_LAYERS", 16, _count)
    referrers = _Int("EBPM_MAX_REFERRERS", 1000, _count)
    url_size = _Int("EBPM_MAX_URL_SIZE", 64 << 20, _size)
    transfer_deadline = _Float("EBPM_TRANSFER_DEADLINE", 600.0, _seconds)
    min_rate = _Int("EBPM_MIN_RATE", 1 << 10, _size)


_LIMITS = Limits()


def limits() -> Limits:
    """The caps in force: the defaults, overridden by EBPM_MAX_* / EBPM_TRANSFER_DEADLINE /
    EBPM_MIN_RATE (each read when asked for; an invalid value is a usage error then)."""
    return _LIMITS


def parse_size(text: str, *, what: str = "size") -> int:
    """`64K`, `256M`, `1G`, `1000` -> bytes (K/M/G are powers of 1024; a trailing B is fine)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS and value[-1:] else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        size = float(number)
    except ValueError:
        raise UsageError(
            f"{what}: {text!r} is not a size", hint="write bytes, or a number with K, M or G"
        ) from None
    if size < 0 or size != size or size == float("inf"):
        raise UsageError(f"{what}: {text!r} is not a size", hint="write a positive number")
    return int(size * _UNITS[unit])


def human_size(size: float) -> str:
    """1536 -> '1.5 KiB' (for messages)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover
