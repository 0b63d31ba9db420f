"""Parse package references `[registry/]repository[:tag][@digest]`; pure, no I/O."""

from __future__ import annotations

import re

from ebpm.config import is_registry_host
from ebpm.errors import InvalidReferenceError
from ebpm.record import record, replace
from ebpm.versions import tag_from_version, version_from_tag

__all__ = [
    "Reference",
    "parse",
    "is_registry_address",
    "is_loopback",
    "is_loopback_address",
    "parse_registry",
    "DIGEST_RE",
    "is_repository",
    "is_tag",
]

DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")  # fullmatch only
MAX_REPOSITORY_LENGTH = 255  # distribution's limit for a repository name
# The grammar of distribution's reference, checked with character sets rather than patterns
# compiled at import (the three cost every command that parses a reference ~0.5 ms; tests
# check each function against its pattern, written beside it):
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_COMPONENT_CHARS = _LOWER | frozenset("._-")
_TAG_CHARS = _ALNUM | frozenset("_.-")
_RUNS = str.maketrans(dict.fromkeys("abcdefghijklmnopqrstuvwxyz0123456789", " "))


def is_repository(path: str) -> bool:
    """`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*` components, `/` apart."""
    for component in path.split("/"):
        if not (component and component[0] in _LOWER and component[-1] in _LOWER
                and _COMPONENT_CHARS.issuperset(component)):
            return False
        for separator in component.translate(_RUNS).split():  # between the [a-z0-9] runs
            if separator not in (".", "_", "__") and separator.strip("-"):
                return False
    return True


def is_tag(tag: str) -> bool:
    """`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`."""
    return 0 < len(tag) <= 128 and tag[0] not in ".-" and _TAG_CHARS.issuperset(tag)


_HINT = "write it as [registry/]repository[:tag][@sha256:digest], e.g. localhost:5000/tools/x:1.0.0"


@record
class Reference:
    """A parsed reference: the registry host[:port], the repository, a tag and/or a digest."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest when known, else the tag ('latest')."""
        return self.digest or self.tag or "latest"

    @property
    def version(self) -> str:
        """The semver version the tag stands for ('' when the tag is no version)."""
        return version_from_tag(self.tag) if self.tag else ""

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest="")

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _looks_like_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or (
        component.startswith("[") and component.endswith("]")
    )


def is_registry_address(text: str) -> bool:
    """`localhost`, `localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`: a registry alone, which
    would otherwise parse as a repository `localhost` with the tag `5000`."""
    host, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not host:
        host, port = text, ""
    if port and not port.isdigit():
        return False
    return host == "localhost" or (host.startswith("[") and host.endswith("]")) or (
        host.count(".") == 3 and all(p.isdigit() for p in host.split(".")))


def parse(text: str, *, default_registry: str = "localhost:5000") -> Reference:
    """Parse `text`; a short name (no registry part) resolves against `default_registry`.

    A tag that is a semver version may be written with `+` (it is stored as `_`).
    """
    if not isinstance(text, str) or not text or text != text.strip():
        raise InvalidReferenceError(f"invalid reference {text!r}: empty or padded", hint=_HINT)
    if "://" in text:
        raise InvalidReferenceError(
            f"invalid reference {_redacted(text)!r}: no scheme allowed", hint=_HINT
        )
    if "@" in text.partition("/")[0]:
        raise InvalidReferenceError(
            f"invalid reference {_redacted(text)!r}: credentials in a reference are refused",
            hint=_USERINFO_HINT,
        )
    rest, digest = text, ""
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not DIGEST_RE.fullmatch(digest):
            raise InvalidReferenceError(
                f"invalid reference {text!r}: bad digest {digest!r}",
                hint="a digest is sha256: followed by 64 lowercase hex digits",
            )
    registry, path = "", rest
    first, sep, remainder = rest.partition("/")
    if not sep and not digest and is_registry_address(rest):
        raise InvalidReferenceError(
            f"invalid reference {text!r}: {text} is a registry, not a repository",
            hint=f"name a repository in it: {text}/REPOSITORY (e.g. {text}/tools/opensnoop)",
        )
    if sep and _looks_like_registry(first):
        registry, path = first, remainder
        if not is_registry_host(registry):
            raise InvalidReferenceError(
                f"invalid reference {text!r}: bad registry {registry!r}", hint=_HINT
            )
    tag = ""
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        tag = tag_from_version(tag)
        if not is_tag(tag):
            raise InvalidReferenceError(
                f"invalid reference {text!r}: bad tag {tag!r}",
                hint="tags are up to 128 of [A-Za-z0-9_.-]; write a version's '+' as '_'",
            )
    if not is_repository(path):
        raise InvalidReferenceError(
            f"invalid reference {text!r}: bad repository {path!r}",
            hint="repositories are lowercase: a-z, 0-9, and '.', '_', '-' between them, '/' apart",
        )
    if len(path) > MAX_REPOSITORY_LENGTH:
        raise InvalidReferenceError(f"invalid reference {text!r}: repository too long", hint=_HINT)
    if not registry:
        if not is_registry_host(default_registry):
            raise InvalidReferenceError(
                f"the default registry {default_registry!r} (EBPM_REGISTRY) is not a host[:port]",
                hint="set EBPM_REGISTRY to a registry such as localhost:5000 or ghcr.io",
            )
        registry = default_registry
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)


_USERINFO_HINT = (
    "give the user with -u and the password on stdin: "
    "`ebpm login HOST -u USER --password-stdin`"
)


def _redacted(text: str) -> str:
    """`https://user:pass@host/x` -> `https://***@host/x`: never echo a password."""
    scheme, sep, rest = text.rpartition("://")
    head, slash, tail = rest.partition("/")
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    return f"{scheme}{sep}{head}{slash}{tail}"


def parse_registry(text: str) -> str:
    """The `host[:port]` a user names a registry by (`ghcr.io`, `https://Host:5000/v2/`),
    lowercased; refuses credentials inside it, bad ports and names that are no host."""
    value = text.strip()
    if "://" in value:
        scheme, _, value = value.partition("://")
        if scheme.lower() not in ("http", "https"):
            raise InvalidReferenceError(f"registry {_redacted(text)!r}: not an http(s) address")
    value = value.split("/", 1)[0]
    if "@" in value:
        raise InvalidReferenceError(
            f"registry {_redacted(text)!r}: credentials in the address are refused",
            hint=_USERINFO_HINT,
        )
    if not value or not is_registry_host(value):
        raise InvalidReferenceError(
            f"registry {text!r}: not a host[:port]", hint="e.g. ghcr.io or localhost:5000"
        )
    return value.lower()


def is_loopback(registry: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (plain http is allowed there without a flag)."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return is_loopback_address(host)


_LOOPBACK_V6 = bytes(15) + b"\x01"  # ::1


def is_loopback_address(host: str) -> bool:
    """What `ipaddress.ip_address(host).is_loopback` says (an IPv4 address in 127.0.0.0/8, or
    IPv6 ::1, with or without a %zone; False for anything that is not an address), through
    the C library's strict parser (`inet_pton`: four decimal octets without leading zeros, as
    ipaddress wants them; a zone of anything but `%` and `/`, as ipaddress reads it):
    importing ipaddress costs a pull ~0.9 ms."""
    from socket import AF_INET, AF_INET6, inet_pton

    try:
        return inet_pton(AF_INET, host)[0] == 127
    except (OSError, ValueError):  # (ValueError: an embedded NUL)
        pass
    address, percent, zone = host.partition("%")
    if (percent and (not zone or "%" in zone)) or "/" in zone:
        return False
    try:
        return inet_pton(AF_INET6, address) == _LOOPBACK_V6
    except (OSError, ValueError):
        return False
