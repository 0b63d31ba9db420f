"""Semver version ranges (npm/cargo syntax) on the `semver` package: parse once, test versions.

Grammar (whitespace around operators is allowed):

    range       := alternative ( "||" alternative )*
    alternative := comparator ( ("," | " ") comparator )* | partial " - " partial | "*"
    (the whole range may be "", any release; an alternative beside "||" may not be empty)
    comparator  := ("=" | "^" | "~" | ">=" | ">" | "<=" | "<")? partial
    partial     := MAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]], where MINOR/PATCH may be x, X or *

A bare version is exact (`1.2.3` means `=1.2.3`); a bare partial is an x-range (`1.2` means
`>=1.2.0, <1.3.0`). Pre-releases match only when the range names one on the same
MAJOR.MINOR.PATCH (npm rule): `^1.2.0-beta.1` allows `1.2.0-beta.2` and `1.2.5`, never
`1.3.0-alpha`.
"""

from __future__ import annotations

import functools
import re

from ebpm.errors import ManifestError
from ebpm.record import record
from ebpm.versions import parse_version

TYPE_CHECKING = False
if TYPE_CHECKING:
    import semver

__all__ = ["Comparator", "Range", "parse_range"]

_PARTIAL_RE = re.compile(
    r"v?(?P<major>0|[1-9]\d*|[xX*])"
    r"(?:\.(?P<minor>0|[1-9]\d*|[xX*])"
    r"(?:\.(?P<patch>0|[1-9]\d*|[xX*])"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?"
)
_OP_RE = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*")
_WILD = {"x", "X", "*"}
_HINT = "write ranges like ^1.2, ~1.2.3, >=1.0, <2.0.0, 1.2.3, *, or several joined by ',' / '||'"


Bound = tuple[int, int, int, str, str]  # major, minor, patch, pre-release, build ('': none)


@functools.lru_cache(maxsize=1024)
def _semver(bound: Bound) -> semver.Version:
    import semver

    major, minor, patch, pre, build = bound
    return semver.Version(major, minor, patch, pre or None, build or None)


@record
class Comparator:
    """One bound: `op` is one of = > >= < <= and `bound` the version it compares against.

    The bound is kept as plain parts and made a `semver.Version` only when a version is
    tested: reading ranges for their normalized spelling (an `install --frozen` checking that
    ebpm.lock is not stale) does not import semver (~8 ms with its argparse and inspect)."""

    op: str
    bound: Bound

    @property
    def version(self) -> semver.Version:
        return _semver(self.bound)

    def test(self, version: semver.Version) -> bool:
        c = version.compare(self.version)
        if self.op == "=":
            return c == 0
        if self.op == ">":
            return c > 0
        if self.op == ">=":
            return c >= 0
        if self.op == "<":
            return c < 0
        return c <= 0

    def __str__(self) -> str:
        major, minor, patch, pre, build = self.bound
        return (f"{self.op}{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
                + (f"+{build}" if build else ""))


_ANY: tuple[Comparator, ...] = ()


@record
class Range:
    """A parsed range: a version matches when it satisfies every comparator of one alternative."""

    text: str
    alternatives: tuple[tuple[Comparator, ...], ...]

    def __contains__(self, version: object) -> bool:
        import semver

        if isinstance(version, str):
            version = parse_version(version)
        if not isinstance(version, semver.Version):
            return False
        return any(_satisfies(alt, version) for alt in self.alternatives)

    def allows(self, version: semver.Version | str) -> bool:
        """True when `version` is in the range (pre-releases only when the range names one)."""
        return version in self

    def filter(self, versions: list[semver.Version]) -> list[semver.Version]:
        return [v for v in versions if v in self]

    @property
    def is_exact(self) -> bool:
        """True for a range that admits at most one version (e.g. `1.2.3` or `=1.2.3`)."""
        return len(self.alternatives) == 1 and len(self.alternatives[0]) == 1 and (
            self.alternatives[0][0].op == "="
        )

    def normalized(self) -> str:
        """A canonical spelling: comparators joined by ', ', alternatives by ' || '."""
        parts = [", ".join(str(c) for c in alt) or "*" for alt in self.alternatives]
        return " || ".join(parts)

    def __str__(self) -> str:
        return self.text


def _satisfies(alt: tuple[Comparator, ...], version: semver.Version) -> bool:
    if not all(c.test(version) for c in alt):
        return False
    if version.prerelease is None:
        return True
    # npm: a pre-release matches only if a comparator names a pre-release of the same X.Y.Z.
    xyz = (version.major, version.minor, version.patch)
    return any(c.bound[3] and c.bound[:3] == xyz for c in alt)


def _error(text: str, why: str) -> ManifestError:
    return ManifestError(f"version range {text!r}: {why}", hint=_HINT)


def _partial(text: str, token: str) -> tuple[int | None, int | None, int | None, str, str]:
    m = _PARTIAL_RE.fullmatch(token)
    if not m:
        raise _error(text, f"{token!r} is not a version")
    parts: list[int | None] = []
    for key in ("major", "minor", "patch"):
        value = m.group(key)
        parts.append(None if value is None or value in _WILD else int(value))
    # Anything after a wildcard is a wildcard too (1.x.3 means 1.x).
    for i in range(3):
        if parts[i] is None:
            parts[i + 1 :] = [None] * (2 - i)
            break
    pre = m.group("pre") or ""
    if pre and parts[2] is None:
        raise _error(text, f"{token!r}: a pre-release needs MAJOR.MINOR.PATCH")
    return parts[0], parts[1], parts[2], pre, m.group("build") or ""


def _v(major: int, minor: int, patch: int, pre: str = "", build: str = "") -> Bound:
    return (major, minor, patch, pre, build)


def _lowest(major: int, minor: int, patch: int) -> Bound:
    # The smallest version at X.Y.Z including pre-releases: X.Y.Z-0.
    return (major, minor, patch, "0", "")


def _comparators(text: str, op: str, token: str) -> tuple[Comparator, ...]:
    major, minor, patch, pre, build = _partial(text, token)
    if major is None:  # *, x
        if op in ("<", ">"):
            return (Comparator("<", _v(0, 0, 0, "0")),)  # matches nothing
        return _ANY
    if op in ("", "="):
        if minor is None:
            return (Comparator(">=", _v(major, 0, 0)), Comparator("<", _lowest(major + 1, 0, 0)))
        if patch is None:
            return (
                Comparator(">=", _v(major, minor, 0)),
                Comparator("<", _lowest(major, minor + 1, 0)),
            )
        return (Comparator("=", _v(major, minor, patch, pre, build)),)
    lo = _v(major, minor or 0, patch or 0, pre, build)
    if op == "^":
        if major > 0 or minor is None:
            hi = _lowest(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            hi = _lowest(0, minor + 1, 0)
        else:
            hi = _lowest(0, 0, patch + 1)
        return (Comparator(">=", lo), Comparator("<", hi))
    if op == "~":
        hi = _lowest(major + 1, 0, 0) if minor is None else _lowest(major, minor + 1, 0)
        return (Comparator(">=", lo), Comparator("<", hi))
    if op == ">=":
        return (Comparator(">=", lo),)
    if op == "<":
        return (Comparator("<", lo if patch is not None else _lowest(major, minor or 0, 0)),)
    if op == ">":
        if minor is None:
            return (Comparator(">=", _v(major + 1, 0, 0)),)
        if patch is None:
            return (Comparator(">=", _v(major, minor + 1, 0)),)
        return (Comparator(">", lo),)
    # "<="
    if minor is None:
        return (Comparator("<", _lowest(major + 1, 0, 0)),)
    if patch is None:
        return (Comparator("<", _lowest(major, minor + 1, 0)),)
    return (Comparator("<=", lo),)


def _alternative(text: str, alt: str) -> tuple[Comparator, ...]:
    alt = alt.strip()
    if alt in ("", "*", "x", "X"):
        return _ANY
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alt)
    if hyphen:
        low = _comparators(text, ">=", hyphen.group(1))
        return low + _comparators(text, "<=", hyphen.group(2))
    # Glue operators to their version ("> = 1.2" is not allowed, ">= 1.2" is).
    alt = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alt)
    out: list[Comparator] = []
    for token in re.split(r"\s*,\s*|\s+", alt):
        if not token:
            raise _error(text, "empty comparator")
        m = _OP_RE.match(token)
        op = (m.group(1) or "") if m else ""
        rest = token[m.end() :] if m else token
        if not rest:
            raise _error(text, f"{token!r} lacks a version")
        out.extend(_comparators(text, op, rest))
    return tuple(out)


@functools.lru_cache(maxsize=8192)
def parse_range(text: str) -> Range:
    """Parse a range; raises ManifestError naming the bad part."""
    if not isinstance(text, str):
        raise _error(str(text), "expected a string")
    if len(text) > 1024:
        raise _error(text[:40] + "...", "too long")
    parts = text.split("||")
    if len(parts) > 1 and any(not part.strip() for part in parts):
        # "^1 ||" would otherwise read as "^1 or anything": an empty range means any version
        # only when it is the whole range
        raise _error(text, "an empty alternative beside '||'")
    alternatives = tuple(_alternative(text, alt) for alt in parts)
    return Range(text=text, alternatives=alternatives)
