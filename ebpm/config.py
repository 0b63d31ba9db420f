"""Where ebpm keeps its store and settings, from the environment (sudo-aware).

Paths are plain strings (`os.path`): a cold pull imports no `pathlib`, which brings
`urllib.parse` and `ipaddress` with it (~3 ms of a pull's CPU); callers that like a `Path`
wrap one."""

from __future__ import annotations

import os

__all__ = [
    "DEFAULT_REGISTRY",
    "invoking_home",
    "store_home",
    "config_dir",
    "system_config_dir",
    "data_dir",
    "default_registry",
    "is_registry_host",
    "offline",
    "debug",
]

DEFAULT_REGISTRY = "localhost:5000"


def invoking_home() -> str:
    """The home of the user who invoked ebpm: under `sudo`, SUDO_USER's, not root's."""
    sudo_user = os.environ.get("SUDO_USER")
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        import pwd

        try:
            return pwd.getpwnam(sudo_user).pw_dir
        except KeyError:
            pass
    return os.environ.get("HOME") or os.path.expanduser("~")


def _xdg(var: str, default: str) -> str:
    # Under sudo the XDG_* variables are root's (or gone): use the invoking user's defaults.
    value = os.environ.get(var)
    if value and not os.environ.get("SUDO_USER"):
        return value
    return os.path.join(invoking_home(), default)


def store_home() -> str:
    """The local store: $EBPM_HOME, else $XDG_CACHE_HOME/ebpm (~/.cache/ebpm)."""
    env = os.environ.get("EBPM_HOME")
    if env:
        return env
    return os.path.join(_xdg("XDG_CACHE_HOME", ".cache"), "ebpm")


def config_dir() -> str:
    """User settings (credentials, keys, trust policy): $EBPM_CONFIG, else ~/.config/ebpm."""
    env = os.environ.get("EBPM_CONFIG")
    if env:
        return env
    return os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "ebpm")


def data_dir() -> str:
    """Long-lived data (the local registry of `ebpm registry up`): ~/.local/share/ebpm."""
    env = os.environ.get("EBPM_DATA")
    if env:
        return env
    return os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), "ebpm")


def system_config_dir() -> str:
    """System-wide settings: $EBPM_SYSTEM_CONFIG, else /etc/ebpm."""
    return os.environ.get("EBPM_SYSTEM_CONFIG", "/etc/ebpm")


def default_registry() -> str:
    """The registry that short names resolve against: $EBPM_REGISTRY (localhost:5000).

    Every command that reads it comes here, so a value that is no `host[:port]` (a scheme, a
    path, a port past 65535) is refused once, by name, before it is joined to a short name."""
    value = os.environ.get("EBPM_REGISTRY") or DEFAULT_REGISTRY
    if not is_registry_host(value):
        from ebpm.errors import UsageError

        shown = value
        if "@" in value:  # never echo a password
            head, _, host = value.rpartition("@")
            shown = f"{head.partition('://')[0]}://***@{host}" if "://" in head else f"***@{host}"
        raise UsageError(f"EBPM_REGISTRY={shown!r} is not a registry address",
                         hint="export EBPM_REGISTRY=HOST[:PORT] (no scheme, no path)")
    return value


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_V6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def is_registry_host(text: str) -> bool:
    """`host[:port]` as a reference names its registry: host-name labels (letters, digits,
    inner `-`; `.` apart) or a bracketed IPv6 literal, then an optional port 1-65535."""
    if text.startswith("["):
        address, bracket, port = text[1:].partition("]")
        if not (bracket and address and _V6_CHARS.issuperset(address)):
            return False
    else:
        host, colon, digits = text.partition(":")
        for label in host.split("."):
            if not (label and label[0] != "-" and label[-1] != "-"
                    and _LABEL_CHARS.issuperset(label)):
                return False
        port = colon + digits
    if not port:
        return True
    digits = port[1:]
    return (port[0] == ":" and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()
            and 0 < int(digits) <= 65535)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def offline() -> bool:
    """EBPM_OFFLINE=1: make no network call at all."""
    return _truthy(os.environ.get("EBPM_OFFLINE"))


def debug() -> bool:
    """EBPM_DEBUG=1: show tracebacks for unexpected errors."""
    return _truthy(os.environ.get("EBPM_DEBUG"))
