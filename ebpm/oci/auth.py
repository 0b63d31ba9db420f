"""Registry credentials and auth challenges: where credentials come from, how challenges parse,
and the cache of bearer tokens per (realm, service, scope)."""

from __future__ import annotations

import binascii  # base64.b64encode/b64decode are these calls (without struct)
import json
import os
import re
import time
from collections.abc import Iterable

from ebpm.errors import AuthError
from ebpm.record import field, record

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from pathlib import Path  # (imported where used: a pull imports none, see ebpm.config)
    from typing import Any

__all__ = [
    "Credentials",
    "Challenge",
    "Scope",
    "TokenCache",
    "parse_challenges",
    "parse_scopes",
    "merge_scopes",
    "scope_string",
    "lookup",
    "store_credentials",
    "remove_credentials",
    "auth_file",
    "docker_config_file",
    "normalize_host",
]

TOKEN_MARGIN = 10.0  # seconds: a cached token is dropped this long before it expires
MIN_TOKEN_LIFETIME = 1.0  # seconds
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, when the token server names none (distribution's spec)
HELPER_TIMEOUT = 30  # seconds for a docker-credential-* helper to answer


IDENTITY_TOKEN_USER = "<token>"  # what docker credential helpers call an identity-token login


@record
class Credentials:
    """A username and password, or an identity (refresh) token; never shown in repr."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""  # where they came from, for messages ("ebpm login", "docker config", ...)

    @property
    def has_basic(self) -> bool:
        return bool(self.username and self.password)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + binascii.b2a_base64(raw, newline=False).decode("ascii")

    def __repr__(self) -> str:  # belt and braces: the dataclass repr already omits secrets
        return f"Credentials(username={self.username!r}, source={self.source!r})"


@record
class Challenge:
    """One `WWW-Authenticate` challenge: the scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return parse_scopes(self.params.get("scope", ""))

    @property
    def error(self) -> str:
        return self.params.get("error", "")


# compiled (and cached by `re`) at the first challenge: most registries a pull meets ask none
_PARAM = r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?'


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a `WWW-Authenticate` header into challenges (Basic, Bearer, ...), in order."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)(\s+|$|,)", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end():]
        params: dict[str, str] = {}
        while rest:
            pm = re.match(_PARAM, rest)
            if not pm or not pm.group(0).strip():
                break
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[pm.group(1).lower()] = value
            rest = rest[pm.end():]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out


@record
class Scope:
    """A token scope `type:name:actions`; actions are a set, so their order never matters."""

    type: str
    name: str
    actions: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def covers(self, other: Scope) -> bool:
        return (self.type, self.name) == (other.type, other.name) and (
            "*" in self.actions or other.actions <= self.actions
        )


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """Parse space-separated scopes; a name may hold ':' (registry:port/repo), actions may not."""
    out: list[Scope] = []
    for item in text.split():
        type_, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if not type_ or not name:
            continue
        out.append(Scope(type_, name, frozenset(a for a in actions.split(",") if a)))
    return tuple(out)


def merge_scopes(*groups: Iterable[Scope]) -> tuple[Scope, ...]:
    """Union the actions of scopes naming the same resource; stable sorted order."""
    merged: dict[tuple[str, str], set[str]] = {}
    for group in groups:
        for scope in group:
            merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return tuple(Scope(t, n, frozenset(a)) for (t, n), a in sorted(merged.items()))


def scope_string(scopes: Iterable[Scope]) -> str:
    """The canonical text of a set of scopes (the token cache key)."""
    return " ".join(str(s) for s in merge_scopes(scopes))


class _Token:
    __slots__ = ("value", "expires")

    def __init__(self, value: str, expires: float) -> None:
        self.value = value
        self.expires = expires


class TokenCache:
    """Bearer tokens per (realm, service, scope), forgotten a little before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], _Token] = {}

    def get(self, realm: str, service: str, scope: str) -> str | None:
        token = self._tokens.get((realm, service, scope))
        if token is None or token.expires <= time.monotonic():
            return None
        return token.value

    def put(self, realm: str, service: str, scope: str, value: str, expires_in: float) -> None:
        # Keep a margin so a token never expires between cache and registry.
        lifetime = max(float(expires_in) - TOKEN_MARGIN, MIN_TOKEN_LIFETIME)
        self._tokens[(realm, service, scope)] = _Token(value, time.monotonic() + lifetime)

    def discard(self, realm: str, service: str, scope: str) -> None:
        self._tokens.pop((realm, service, scope), None)

    def clear(self) -> None:
        self._tokens.clear()


# ---------------------------------------------------------------------------------------------
# Credential stores: ebpm's own auth.json first, then docker's config.json.


def normalize_host(server: str) -> str:
    """`https://Host:5000/v1/` -> `host:5000`: how credential-store keys compare."""
    text = server.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    return text.rsplit("@", 1)[-1].lower()  # never key anything by user:password


def auth_file() -> Path:
    """ebpm's own credential store, written by `ebpm login`: config_dir()/auth.json."""
    from pathlib import Path

    from ebpm.config import config_dir

    return Path(config_dir(), "auth.json")


def docker_config_file() -> Path:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json (the invoking user's, under sudo)."""
    from pathlib import Path

    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return Path(env, "config.json")
    from ebpm.config import invoking_home

    return Path(invoking_home(), ".docker", "config.json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as err:
        raise AuthError(f"credentials file {path}: {_unreadable(err)}",
                        hint=f"fix or remove {path}") from err
    return data if isinstance(data, dict) else {}


def _unreadable(err: BaseException) -> str:
    """Why a credentials file could not be read, in words (never its content: secrets)."""
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON at line {err.lineno} column {err.colno}"
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, OSError):
        return f"unreadable: {err.strerror or 'input/output error'}"
    return "not valid JSON (nested too deeply)"


def _find_entry(auths: Any, host: str) -> dict[str, Any] | None:
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if isinstance(key, str) and normalize_host(key) == host and isinstance(entry, dict):
            return entry
    return None


def _from_entry(entry: dict[str, Any], source: str) -> Credentials | None:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = binascii.a2b_base64(encoded).decode()
        except (ValueError, UnicodeDecodeError) as err:
            raise AuthError(f"credentials in {source}: bad base64 `auth` value") from err
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError(f"credentials in {source}: `auth` is not base64 of user:password")
    token = str(entry.get("identitytoken") or "")
    if not (username and password) and not token:
        return None
    return Credentials(username, password, token, source)


def _run_helper(name: str, host: str) -> Credentials | None:
    """Ask `docker-credential-NAME get` for `host` (a real subprocess, JSON on stdout)."""
    import shutil
    import subprocess

    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        from ebpm import log

        log.get(__name__).warning(
            "credential helper docker-credential-%s not found; going anonymous", name)
        return None
    for server in (host, f"https://{host}"):
        try:
            proc = subprocess.run(
                [program, "get"], input=server.encode(), capture_output=True,
                timeout=HELPER_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            why = (f"no answer within {HELPER_TIMEOUT} s"
                   if isinstance(err, subprocess.TimeoutExpired)
                   else f"cannot run it: {err.strerror or 'input/output error'}")
            raise AuthError(
                f"credential helper docker-credential-{name}: {why}",
                hint="check the helper, or `ebpm login` to store credentials for ebpm",
            ) from err
        if proc.returncode != 0:
            continue  # "credentials not found in native keychain": try the next spelling
        try:
            doc = json.loads(proc.stdout)
        except ValueError as err:
            raise AuthError(
                f"credential helper docker-credential-{name}: output is not JSON"
            ) from err
        username, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
        if not secret:
            return None
        source = f"docker-credential-{name}"
        if username == IDENTITY_TOKEN_USER:
            return Credentials(identity_token=secret, source=source)
        return Credentials(username, secret, source=source)
    return None


def lookup(host: str) -> Credentials | None:
    """Credentials for `host`: ebpm's auth.json, then docker's credHelpers, credsStore, auths."""
    host = normalize_host(host)
    own = _find_entry(_read_json(auth_file()).get("auths"), host)
    if own is not None:
        creds = _from_entry(own, "ebpm login")
        if creds is not None:
            return creds
    docker = _read_json(docker_config_file())
    if not docker:
        return None
    helpers = docker.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(name, str) and normalize_host(str(key)) == host:
                return _run_helper(name, host)
    entry = _find_entry(docker.get("auths"), host)
    if entry is not None:
        creds = _from_entry(entry, "docker config")
        if creds is not None:
            return creds
    store = docker.get("credsStore")
    if isinstance(store, str) and store:
        return _run_helper(store, host)
    return None


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON atomically with mode 0600 (the directory 0700): secrets live here."""
    from ebpm.files import PRIVATE_DIR_MODE, PRIVATE_MODE, atomic_write

    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    atomic_write(path, text, mode=PRIVATE_MODE, dir_mode=PRIVATE_DIR_MODE)


def store_credentials(host: str, credentials: Credentials) -> Path:
    """Save credentials for `host` in ebpm's auth.json (mode 0600); return the file's path."""
    path = auth_file()
    doc = _read_json(path)
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    host = normalize_host(host)
    for key in [k for k in auths if normalize_host(k) == host]:
        del auths[key]
    entry: dict[str, str] = {}
    if credentials.has_basic:
        raw = f"{credentials.username}:{credentials.password}".encode()
        entry["auth"] = binascii.b2a_base64(raw, newline=False).decode("ascii")
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    auths[host] = entry
    doc["auths"] = auths
    _write_private(path, doc)
    return path


def remove_credentials(host: str) -> bool:
    """Forget ebpm's stored credentials for `host`; False when there were none."""
    path = auth_file()
    doc = _read_json(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    host = normalize_host(host)
    keys = [k for k in auths if normalize_host(k) == host]
    if not keys:
        return False
    for key in keys:
        del auths[key]
    _write_private(path, doc)
    return True
