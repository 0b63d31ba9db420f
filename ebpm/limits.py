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
from ebpm.record import record

__all__ = ["Limits", "limits", "parse_size", "human_size"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@record
class Limits:
    """The caps in force (bytes, counts, seconds)."""

    package_size: int = 256 << 20
    manifest_size: int = 4 << 20
    tags_size: int = 4 << 20
    error_body: int = 64 << 10
    response_size: int = 1 << 20
    archive_size: int = 1 << 30
    archive_members: int = 10_000
    signature_layers: int = 16
    referrers: int = 1000
    url_size: int = 64 << 20
    transfer_deadline: float = 600.0
    min_rate: int = 1 << 10


_SIZES = {
    "package_size": "EBPM_MAX_PACKAGE_SIZE",
    "manifest_size": "EBPM_MAX_MANIFEST_SIZE",
    "tags_size": "EBPM_MAX_TAGS_SIZE",
    "error_body": "EBPM_MAX_ERROR_BODY",
    "response_size": "EBPM_MAX_RESPONSE_SIZE",
    "archive_size": "EBPM_MAX_ARCHIVE_SIZE",
    "url_size": "EBPM_MAX_URL_SIZE",
    "min_rate": "EBPM_MIN_RATE",
}
_COUNTS = {
    "archive_members": "EBPM_MAX_ARCHIVE_MEMBERS",
    "signature_layers": "EBPM_MAX_SIGNATURE_LAYERS",
    "referrers": "EBPM_MAX_REFERRERS",
}
_SECONDS = {"transfer_deadline": "EBPM_TRANSFER_DEADLINE"}


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


_CACHED: tuple[tuple[str | None, ...], Limits] | None = None


def limits() -> Limits:
    """The caps in force: the defaults, overridden by EBPM_MAX_* / EBPM_TRANSFER_DEADLINE /
    EBPM_MIN_RATE (read on every call, so a test or a long-lived caller may change them; parsed
    again only when one of them changed: a transfer asks for them at every request)."""
    global _CACHED
    env = os.environ
    key = tuple(env.get(var) for var in _ALL)
    cached = _CACHED
    if cached is not None and cached[0] == key:
        return cached[1]
    found = _parse_limits()
    _CACHED = (key, found)
    return found


def _parse_limits() -> Limits:
    values: dict[str, int | float] = {}
    for field, var in _SIZES.items():
        text = os.environ.get(var, "").strip()
        if text:
            values[field] = parse_size(text, what=var)
    for field, var in _COUNTS.items():
        text = os.environ.get(var, "").strip()
        if text:
            if not text.isdigit():
                raise UsageError(f"{var}: {text!r} is not a count", hint="write a whole number")
            values[field] = int(text)
    for field, var in _SECONDS.items():
        text = os.environ.get(var, "").strip()
        if text:
            try:
                seconds = float(text)
            except ValueError:
                seconds = -1.0
            if not seconds > 0 or seconds == float("inf"):
                raise UsageError(f"{var}: {text!r} is not a number of seconds",
                                 hint="write a positive number, e.g. 600")
            values[field] = seconds
    return Limits(**values)  # type: ignore[arg-type]


_ALL = (*_SIZES.values(), *_COUNTS.values(), *_SECONDS.values())
