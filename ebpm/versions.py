"""Versions and their tags: the one semver check, tag <-> version, tag ordering, the latest release.

A tag stands for a semantic version with `+` written `_` (`+` is not a tag character). Every
check is anchored: `'1.2.3\\n'` is not a version.
"""

from __future__ import annotations

import functools
import re

from ebpm.errors import ManifestError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    import semver

__all__ = [
    "SEMVER_PATTERN",
    "is_version",
    "parse_version",
    "tag_from_version",
    "version_from_tag",
    "is_version_tag",
    "sorted_versions",
    "tag_versions",
    "latest_version",
    "latest_release",
]

# semver.org's regular expression, used only with fullmatch; compiled on first need, by re's
# own cache (its compile is ~0.3 ms of every start that reads a config: `is_version` answers
# the plain form without it)
SEMVER_PATTERN = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_CACHE_SIZE = 65536


def _number(part: str) -> bool:
    """A semver numeric identifier: ASCII digits, no leading zero."""
    return part.isascii() and part.isdigit() and (part == "0" or part[0] != "0")


def is_version(text: object) -> bool:
    """True when `text` is exactly a semantic version (MAJOR.MINOR.PATCH[-pre][+build])."""
    if not isinstance(text, str):
        return False
    parts = text.split(".")
    if len(parts) == 3 and all(_number(p) for p in parts):
        return True  # the plain form, without the regular expression
    return re.fullmatch(SEMVER_PATTERN, text) is not None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_version(text: str) -> semver.Version:
    """A strict semver version (no leading 'v', all three parts); raises ManifestError."""
    import semver

    if not is_version(text):
        raise ManifestError(
            f"version {text!r}: not a semantic version", hint="write it as MAJOR.MINOR.PATCH"
        )
    return semver.Version.parse(text)


def tag_from_version(version: str) -> str:
    """The tag of a semver version: `+` is not a tag character, so it is written `_`."""
    return version.replace("+", "_")


def version_from_tag(tag: str) -> str:
    """The version a tag stands for: `_` back to `+`."""
    return tag.replace("_", "+")


def is_version_tag(tag: str) -> bool:
    """True when `tag` stands for a semantic version."""
    return is_version(version_from_tag(tag))


def tag_versions(tags: Iterable[str]) -> list[tuple[semver.Version, str]]:
    """(version, tag) for the tags that are versions, ascending by precedence, then by tag."""
    pairs = [(parse_version(version_from_tag(t)), t) for t in set(tags) if is_version_tag(t)]
    pairs.sort(key=lambda item: (item[0], item[1]))
    return pairs


def sorted_versions(tags: Iterable[str]) -> list[str]:
    """The tags that are semver versions, ascending by precedence (others left out)."""
    return [tag for _, tag in tag_versions(tags)]


def latest_release(versions: Iterable[semver.Version]) -> semver.Version | None:
    """The highest version that is no pre-release; the highest pre-release if nothing else."""
    ordered = sorted(versions)
    releases = [v for v in ordered if v.prerelease is None] or ordered
    return releases[-1] if releases else None


def latest_version(tags: Iterable[str]) -> str | None:
    """The tag of the highest release version among `tags` (pre-releases only if nothing else)."""
    pairs = tag_versions(tags)
    best = latest_release(v for v, _ in pairs)
    if best is None:
        return None
    return max(t for v, t in pairs if v == best)
