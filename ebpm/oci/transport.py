"""HTTP transport to one registry: session and TLS, timeouts, bounded retries, redirects that
drop credentials across hosts, the 401 auth handshake, the offline choke point, and errors that
keep the spec's structure with URLs redacted.

HTTP goes through `ebpm.oci.http` (h11 over a socket; ssl only for https). Every exchange
is bounded: a whole-exchange deadline and a minimum average rate, enforced on each socket
operation by the exchange's `ebpm.oci.deadline.Clock` (no watchdog thread), and every body is
read through `iter_body`/`read_body` with a cap
(`ebpm.limits`) -- an error answer is cut at EBPM_MAX_ERROR_BODY, any other small answer is
refused beyond EBPM_MAX_RESPONSE_SIZE -- so a hostile server can neither stall nor flood us."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping

from ebpm.errors import (
    AuthError,
    DigestMismatchError,
    NotFoundError,
    OfflineError,
    RegistryError,
    TimedOutError,
    TooLargeError,
    UnreachableError,
)
from ebpm.limits import human_size, limits
from ebpm.log import DEBUG
from ebpm.log import get as get_logger
from ebpm.oci.auth import (
    DEFAULT_TOKEN_LIFETIME,
    Challenge,
    Credentials,
    Scope,
    TokenCache,
    merge_scopes,
    scope_string,
)
from ebpm.oci.deadline import Clock
from ebpm.oci.reference import is_loopback

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any

    from ebpm.oci.http import Client, Response

__all__ = [
    "Transport",
    "make_client",
    "redact",
    "error_from_response",
    "BACKOFF",
    "USER_AGENT",
    "with_query",
    "download",
    "iter_body",
    "read_body",
    "CHUNK",
]

_log = get_logger(__name__)

BACKOFF = (0.2, 0.6, 1.8)  # seconds before retry 1, 2, 3
MAX_REDIRECTS = 5
TIMEOUT = 10.0  # seconds to connect and between bytes, per registry request
DOWNLOAD_TIMEOUT = 30.0  # the same for a plain URL download
RETRIES = 2  # retries of a failed request (bounded by BACKOFF)
MAX_RETRY_AFTER = 3.0  # seconds
USER_AGENT = "ebpm"
CHUNK = 64 * 1024  # read size for streamed bodies
_REDIRECTS = (301, 302, 303, 307, 308)  # moved, found, see other, temporary, permanent
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # too many requests, server errors
_UNREACHABLE_HINT = (
    "is it running? `ebpm registry up` starts one; use --offline to work from the store"
)
_SLOW_HINT = (
    "the server stalls or drips; if it is only slow, raise EBPM_TRANSFER_DEADLINE or lower "
    "EBPM_MIN_RATE"
)
_TLS_HINT = "give its CA with --ca-file (env EBPM_CA_FILE), or --insecure to skip verification"
_PLAIN_HINT = ("if that is where you meant: an http:// URL, or for a registry --insecure "
               "(env EBPM_INSECURE_REGISTRIES) to allow plain http")


def redact(url: str) -> str:
    """A URL fit for messages and logs: no userinfo, no query (upload state, tokens)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def make_client(*, ca_bundle: str | None = None, insecure: bool = False) -> Client:
    """An HTTP client that verifies TLS against `ca_bundle` (else $REQUESTS_CA_BUNDLE or
    $CURL_CA_BUNDLE, else the system's store), or not at all when `insecure`."""
    from ebpm import __version__
    from ebpm.oci.http import Client

    return Client(ca_bundle=ca_bundle, insecure=insecure,
                  user_agent=f"{USER_AGENT}/{__version__}")


def _read_error_types() -> tuple[type[BaseException], ...]:
    from ebpm.oci.http import ProtocolError

    return (OSError, ProtocolError)


def _clock_of(resp: Response) -> Clock | None:
    return getattr(resp, "_ebpm_clock", None)


def iter_body(resp: Response, what: str) -> Iterator[bytes]:
    """The body in chunks as they arrive, decompressed at most CHUNK at a time (a gzip bomb
    costs no memory); every recv is bounded by the exchange's clock. A connection that dies
    mid-body is a truncated download; one whose clock ran out is a TimedOutError."""
    clock = _clock_of(resp)
    try:
        while True:
            chunk = resp.read1(CHUNK)
            if not chunk:
                break
            yield chunk
    except _read_error_types() as err:
        resp.close()
        from ebpm.oci.http import DecodeError

        if isinstance(err, DecodeError):
            raise DigestMismatchError(f"{what}: the compressed body is damaged",
                                      hint="the server sent broken gzip/deflate") from err
        if clock is not None and clock.reason:
            raise TimedOutError(f"{what}: {clock.reason}", hint=_SLOW_HINT) from err
        cause = err.strerror if isinstance(err, OSError) else str(err)
        raise DigestMismatchError(
            f"{what}: download truncated: {(cause or 'the connection broke').lower()}",
            hint="the connection broke mid-transfer; try again (nothing was stored)",
        ) from err


def read_body(
    resp: Response, what: str, cap: int, *, truncate: bool = False,
    cap_name: str = "EBPM_MAX_RESPONSE_SIZE",
) -> bytes:
    """The whole body, at most `cap` bytes (decompressed). Beyond the cap: TooLargeError, or
    with `truncate` the first `cap` bytes (the rest is never read; the connection is dropped).
    The body is kept on `resp` (`resp.content`, `resp.json()` then work without reading more)."""
    cached = resp._content
    if cached is not None:
        return cached
    declared = resp.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > cap:
        resp.close()
        raise TooLargeError(
            f"{what}: the answer announces {human_size(int(declared))}, more than the "
            f"{human_size(cap)} cap ({cap_name})",
            hint=f"a hostile or broken server; raise {cap_name} if this is expected",
        )
    buf = bytearray()
    for chunk in iter_body(resp, what):
        buf += chunk
        if len(buf) > cap:
            resp.close()
            if truncate:
                del buf[cap:]
                break
            raise TooLargeError(
                f"{what}: the answer exceeds the {human_size(cap)} cap ({cap_name})",
                hint=f"a hostile or broken server; raise {cap_name} if this is expected",
            )
    data = bytes(buf)
    resp._content = data
    return data


def _spec_errors(resp: Response) -> list[dict[str, Any]]:
    try:
        doc = json.loads(_error_body(resp) or b"{}")
    except (ValueError, RuntimeError):
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _error_body(resp: Response) -> bytes:
    """At most EBPM_MAX_ERROR_BODY bytes of an error answer (a 1.5 GB one costs nothing)."""
    try:
        return read_body(resp, "error answer", limits().error_body, truncate=True)
    except (DigestMismatchError, TimedOutError):
        return b""


def error_from_response(
    resp: Response, context: str, *, hint: str | None = None, host: str | None = None
) -> RegistryError:
    """The registry's error as an exception: status, the spec's first code and its message.
    `hint` is for a refused request (404, 400...); refused access (401, 403: log in to `host`),
    rate limits and server errors (429, 5xx: whether the request was retried) have their own."""
    errors = _spec_errors(resp)
    code = _text(errors[0].get("code")) if errors else ""
    detail = "; ".join(
        f"{_text(e.get('code'))}: {_text(e.get('message'))}".strip(": ") for e in errors
    ).strip("; ") or (resp.reason or "").strip() or "error"
    status = resp.status_code
    message = f"{context}: {status} {detail}"
    cls: type[RegistryError] = RegistryError
    # `hint` speaks of the request (a name not found): the server's own trouble comes first
    if status == 404:
        cls = NotFoundError
    elif status in (401, 403):
        cls = AuthError
        hint = (f"the registry refused access: log in with `ebpm login {host or 'REGISTRY'}`, "
                "or check your account's access")
    elif status == 429 or status >= 500:
        tries = getattr(resp, "_ebpm_tries", 1)
        retried = f"after {tries} tries" if tries > 1 else "not retried"
        hint = (f"the registry is rate-limiting ({retried}); try again later"
                if status == 429 else
                f"the registry failed on its side ({retried}); try again later")
    return cls(message, hint=hint, status=status, code=code or None)


def _text(value: object) -> str:
    """A string field of a registry's error, or nothing (a number or object is not shown)."""
    return value.strip()[:200] if isinstance(value, str) else ""


def _refused(err: BaseException) -> bool:
    return _in_chain(err, ConnectionRefusedError) or "Connection refused" in str(err)


def _unresolved(err: BaseException) -> bool:
    import socket

    return _in_chain(err, socket.gaierror) or "NameResolutionError" in str(err)


def _in_chain(err: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    stack: list[Any] = [err]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return True
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None),
                          *[a for a in item.args if isinstance(a, BaseException)]])
    return False


class Transport:
    """Requests to one registry host, authenticated on demand and retried within bounds."""

    def __init__(
        self, host: str, *, insecure: bool = False, ca_bundle: str | None = None,
        credentials: Credentials | None = None, timeout: float = TIMEOUT, retries: int = RETRIES,
        offline: bool = False,
    ) -> None:
        self.host = host
        self.insecure = insecure
        self.ca_bundle = ca_bundle
        self.offline = offline  # besides $EBPM_OFFLINE, which is always honoured
        self.timeout = timeout
        self.retries = max(0, min(retries, len(BACKOFF)))
        plain = (is_loopback(host) or insecure) and not ca_bundle
        self.scheme = "http" if plain else "https"
        self._credentials = credentials
        self._credentials_looked_up = credentials is not None
        self._client: Client | None = None
        self._challenge: Challenge | None = None
        self._tokens = TokenCache()
        self._upgraded: dict[str, tuple[Scope, ...]] = {}  # requested scope -> scope granted

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = make_client(ca_bundle=self.ca_bundle, insecure=self.insecure)
        return self._client

    @property
    def credentials(self) -> Credentials | None:
        if not self._credentials_looked_up:
            from ebpm.oci.auth import lookup

            self._credentials = lookup(self.host)
            self._credentials_looked_up = True
        return self._credentials

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}{path}"

    # -- one HTTP exchange, with retries and redirects ---------------------------------------

    def _send(
        self, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None = None,
        params: Mapping[str, str] | None = None, stream: bool = False, context: str,
    ) -> Response:
        """Send with bounded retries (connection errors, 429, 5xx) and safe redirects."""
        from ebpm import config
        from ebpm.oci.http import ProtocolError, not_tls, split_url, tls_errors

        if self.offline or config.offline():
            raise OfflineError(
                f"{context}: offline mode, no network call made ({self.host})",
                hint="unset EBPM_OFFLINE / drop --offline, or use what the store holds",
            )
        retries = 0 if method == "PATCH" else self.retries
        attempt = 0
        while True:
            try:
                resp = self._follow(method, url, headers=headers, data=data, params=params,
                                    stream=stream, context=context)
            except tls_errors() as err:
                if not_tls(err):
                    raise RegistryError(
                        f"{context}: {split_url(url)[1]} answers in plain http, not https",
                        hint=_PLAIN_HINT, code="TLS",
                    ) from err
                raise RegistryError(
                    f"{context}: TLS verification of {split_url(url)[1]} failed",
                    hint=_TLS_HINT, code="TLS",
                ) from err
            except (OSError, ProtocolError) as err:
                host = split_url(url)[1]
                if _refused(err):
                    raise UnreachableError(
                        f"registry {host} unreachable: connection refused", hint=_UNREACHABLE_HINT
                    ) from err
                if _unresolved(err):
                    raise UnreachableError(
                        f"registry {host} unreachable: unknown host",
                        hint="check the registry name; use --offline to work from the store",
                    ) from err
                if attempt >= retries:
                    timed_out = isinstance(err, TimeoutError)
                    cause = "timed out" if timed_out else "connection failed"
                    raise UnreachableError(
                        f"registry {host} unreachable: {cause} after {attempt + 1} attempt(s)",
                        hint=_UNREACHABLE_HINT,
                    ) from err
                if _log.isEnabledFor(DEBUG):
                    _log.debug("%s %s: %s; retrying", method, redact(url), type(err).__name__)
            else:
                if resp.status_code not in _RETRY_STATUS or attempt >= retries:
                    resp._ebpm_tries = attempt + 1  # type: ignore[attr-defined]
                    if not stream:  # the body now, within its cap
                        if resp.status_code >= 400:
                            _error_body(resp)
                        else:
                            read_body(resp, context, limits().response_size)
                    return resp
                if _log.isEnabledFor(DEBUG):
                    _log.debug("%s %s -> %s; retrying", method, redact(url), resp.status_code)
                delay = max(BACKOFF[attempt], _retry_after(resp))
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            time.sleep(BACKOFF[attempt])
            attempt += 1

    def _follow(
        self, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None,
        params: Mapping[str, str] | None, stream: bool, context: str,
    ) -> Response:
        """One request and its redirects; Authorization never leaves the original host.

        Each exchange runs under its clock (whole-exchange deadline, minimum rate, per-read
        timeout); the body is always streamed, for the caller (or `_send`) to read within a
        cap."""
        from ebpm.oci.http import ProtocolError, split_url

        origin = split_url(url)[1]
        hdrs = dict(headers)
        caps = limits()
        if params:
            url = _with_query(url, list(params.items()))
        for _ in range(MAX_REDIRECTS + 1):
            clock = Clock(deadline=caps.transfer_deadline, min_rate=caps.min_rate,
                          grace=self.timeout, timeout=self.timeout, sent=len(data or b""))
            try:
                resp = self.client.request(method, url, headers=hdrs, body=data, clock=clock)
            except (OSError, ProtocolError) as err:
                if clock.reason:
                    raise TimedOutError(
                        f"{context}: {split_url(url)[1]}: {clock.reason}", hint=_SLOW_HINT,
                    ) from err
                raise
            resp._ebpm_clock = clock  # type: ignore[attr-defined]
            if _log.isEnabledFor(DEBUG):  # (redact() is not free: only when written)
                _log.debug("%s %s -> %s", method, redact(url), resp.status_code)
            location = resp.headers.get("Location")
            if resp.status_code not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                return resp
            resp.close()
            from urllib.parse import urljoin, urlsplit

            target = urljoin(url, location)
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https"):
                raise RegistryError(
                    f"{context}: refusing redirect to {redact(target)!r} (not http or https)",
                    hint="a registry redirects only to http(s) URLs; this one is broken or hostile",
                    status=resp.status_code,
                )
            if parts.scheme == "http" and urlsplit(url).scheme == "https" and not (
                self.insecure or is_loopback(parts.netloc)
            ):
                raise RegistryError(
                    f"{context}: refusing redirect from https to plain http ({parts.netloc})",
                    hint="pass --insecure if you trust this registry", status=resp.status_code,
                )
            if parts.netloc != origin:
                hdrs.pop("Authorization", None)
            url = target
        raise RegistryError(f"{context}: more than {MAX_REDIRECTS} redirects")

    # -- authentication ----------------------------------------------------------------------

    def _authorization(self, scopes: tuple[Scope, ...], context: str) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        creds = self.credentials
        if challenge.scheme == "basic":
            return creds.basic_header() if creds is not None and creds.has_basic else None
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scopes, context)
        return None

    def _token(self, challenge: Challenge, scopes: tuple[Scope, ...], context: str) -> str:
        if not challenge.realm:
            raise AuthError(f"{context}: the registry's Bearer challenge names no realm")
        scope = scope_string(scopes)
        cached = self._tokens.get(challenge.realm, challenge.service, scope)
        if cached is not None:
            return cached
        from urllib.parse import urlencode, urlsplit

        realm = urlsplit(challenge.realm)
        if realm.scheme not in ("http", "https") or not realm.hostname:
            raise AuthError(
                f"{context}: the registry names token realm {redact(challenge.realm)!r}, "
                "which is not an http(s) URL",
                hint="the registry is misconfigured or hostile; nothing was sent there",
            )
        creds = self.credentials if self._realm_trusted(challenge.realm) else None
        query: list[tuple[str, str]] = []
        if challenge.service:
            query.append(("service", challenge.service))
        query.extend(("scope", str(s)) for s in merge_scopes(scopes))
        realm_host = urlsplit(challenge.realm).netloc
        where = f"{context}: token from {realm_host}"
        if creds is not None and creds.identity_token:
            form = dict(query)
            form.update(grant_type="refresh_token", refresh_token=creds.identity_token,
                        client_id=USER_AGENT)
            if len(scopes) > 1:
                form["scope"] = " ".join(str(s) for s in merge_scopes(scopes))
            resp = self._send(
                "POST", challenge.realm, context=where, data=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        else:
            headers = {}
            if creds is not None and creds.has_basic:
                headers["Authorization"] = creds.basic_header()
            resp = self._send("GET", _with_query(challenge.realm, query), headers=headers,
                              context=where)
        if resp.status_code in (401, 403):
            raise self._wrong_credentials(where, resp.status_code)
        if resp.status_code != 200:
            raise error_from_response(resp, where)
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
            expires_in = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError, RecursionError) as err:
            raise AuthError(f"{where}: the token server's answer is not valid JSON") from err
        if not isinstance(token, str) or not token:
            raise AuthError(f"{where}: the token server sent no token")
        self._tokens.put(challenge.realm, challenge.service, scope, token, expires_in)
        return token

    def _realm_trusted(self, realm_url: str) -> bool:
        """May stored credentials go to this token realm? Only on the registry's own host (any
        port) or a host configured for it (EBPM_AUTH_REALMS=registry=realmhost,...), and never
        over plain http to a host that is not loopback. Warns once per realm when refusing."""
        if self.credentials is None:
            return True
        from urllib.parse import urlsplit

        parts = urlsplit(realm_url)
        realm_host = (parts.hostname or "").lower()
        own = (urlsplit(f"//{self.host}").hostname or "").lower()
        allowed = realm_host == own or realm_host in configured_realms(self.host)
        plain_remote = parts.scheme == "http" and not is_loopback(parts.netloc)
        if allowed and not plain_remote:
            return True
        if realm_url not in _WARNED_REALMS:
            _WARNED_REALMS.add(realm_url)
            why = ("plain http to a host that is not loopback" if allowed else
                   f"another host than {own}")
            _log.warning(
                "not sending your %s credentials to token realm %s (%s); asking anonymously. "
                "Set EBPM_AUTH_REALMS=%s=%s if that host is the registry's",
                self.host, redact(realm_url), why, self.host, realm_host,
            )
        return False

    def _wrong_credentials(self, context: str, status: int) -> AuthError:
        creds = self.credentials
        if creds is not None:
            who = f"user {creds.username!r}" if creds.username else "identity token"
            return AuthError(
                f"{context}: wrong credentials ({who}, from {creds.source or 'the caller'})",
                hint=f"log in again: `ebpm login {self.host}`", status=status,
                code="UNAUTHORIZED",
            )
        return AuthError(
            f"{context}: authentication required", hint=f"log in with `ebpm login {self.host}`",
            status=status, code="UNAUTHORIZED",
        )

    # -- the public entry point --------------------------------------------------------------

    def request(
        self, method: str, path: str, *, context: str, scopes: tuple[Scope, ...] = (),
        headers: Mapping[str, str] | None = None, data: bytes | None = None,
        stream: bool = False,
    ) -> Response:
        """Send `method path` (a path under base_url, or an absolute URL), authenticating on 401.

        Returns the response whatever its status (except 401, which becomes AuthError).
        """
        requested = scope_string(scopes)
        scopes = self._upgraded.get(requested, scopes)
        hdrs = dict(headers or {})
        url = self.url(path)
        from ebpm.oci.http import split_url

        if split_url(url)[1] != self.host:  # an absolute URL elsewhere gets no credentials
            return self._send(method, url, headers=hdrs, data=data, stream=stream,
                              context=context)
        auth = self._authorization(scopes, context)
        if auth:
            hdrs["Authorization"] = auth
        resp = self._send(method, url, headers=hdrs, data=data, stream=stream, context=context)
        if (resp.status_code == 400 and self.scheme == "http"
                and "://" not in path):
            if b"HTTP request to an HTTPS server" in resp.content:
                self.scheme = "https"  # a loopback registry that speaks TLS
                return self.request(method, path, context=context, scopes=scopes,
                                    headers=headers, data=data, stream=stream)
        if resp.status_code != 401:
            return resp
        from ebpm.oci.auth import parse_challenges

        challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        resp.close()
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or next(
            (c for c in challenges if c.scheme == "basic"), None
        )
        if chosen is None:
            raise AuthError(
                f"{context}: 401 and no usable WWW-Authenticate challenge",
                status=401,
                code="UNAUTHORIZED",
            )
        if auth and chosen.scheme == "basic":
            raise self._wrong_credentials(context, 401)
        self._challenge = chosen
        if chosen.scheme == "bearer":
            scopes = merge_scopes(scopes, chosen.scopes)
            self._upgraded[requested] = scopes
            if auth:  # the token we sent expired or was too narrow: ask for a fresh one
                self._tokens.discard(chosen.realm, chosen.service, scope_string(scopes))
        auth = self._authorization(scopes, context)
        if not auth:
            raise self._wrong_credentials(context, 401)
        hdrs["Authorization"] = auth
        resp = self._send(method, url, headers=hdrs, data=data, stream=stream, context=context)
        if resp.status_code == 401:
            again = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            if any(c.error == "insufficient_scope" for c in again):
                raise self._insufficient(context, next(
                    c for c in again if c.error == "insufficient_scope"))
            raise self._wrong_credentials(context, 401)
        return resp

    def _insufficient(self, context: str, challenge: Challenge) -> AuthError:
        wanted = " ".join(str(s) for s in challenge.scopes) or "this operation"
        if self.credentials is None:
            hint = f"anonymous access is not enough: `ebpm login {self.host}`"
        else:
            hint = "your account lacks this access; ask the registry's owner"
        return AuthError(
            f"{context}: insufficient_scope: not allowed {wanted}", hint=hint,
            status=401,
            code="insufficient_scope",
        )

    def expect(
        self, resp: Response, context: str, ok: tuple[int, ...], *,
        hint: str | None = None,
    ) -> Response:
        """Return `resp` if its status is one of `ok`, else raise the registry's error."""
        if resp.status_code in ok:
            return resp
        try:
            raise error_from_response(resp, context, hint=hint, host=self.host)
        finally:
            resp.close()


_WARNED_REALMS: set[str] = set()


def configured_realms(host: str) -> set[str]:
    """Token-realm hosts configured for registry `host` in $EBPM_AUTH_REALMS
    (`registry=realmhost` pairs, comma-separated; e.g. registry-1.docker.io=auth.docker.io)."""
    import os

    out: set[str] = set()
    for item in os.environ.get("EBPM_AUTH_REALMS", "").split(","):
        registry, sep, realm = item.strip().partition("=")
        if sep and registry.strip().lower() == host.lower():
            out.add(realm.strip().lower())
    return out


def _retry_after(resp: Response) -> float:
    """A small Retry-After (seconds) is honoured; anything longer is capped: we never wait
    minutes."""
    value = resp.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0


def _with_query(url: str, query: list[tuple[str, str]]) -> str:
    """Add query parameters to a URL that may already carry some (upload `_state`, realm)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True) + query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), parts.fragment))


def with_query(url: str, **params: str) -> str:
    """Public form of the query helper used by the registry client (e.g. `digest=`)."""
    return _with_query(url, list(params.items()))



def download(
    url: str, *, max_bytes: int, ca_bundle: str | None = None, insecure: bool = False,
    offline: bool = False, timeout: float = DOWNLOAD_TIMEOUT, context: str | None = None,
) -> bytes:
    """GET an http(s) URL outside any registry into bytes, at most `max_bytes` of them.

    The same session rules as a registry's (User-Agent, `ca_bundle`/`insecure`, bounded
    retries, no https->http redirect, the offline choke point); no credentials are sent.
    A status other than 200 raises NotFoundError (404) or RegistryError; a body over the cap
    TooLargeError, without reading the rest. Plain http only to loopback or with `insecure`,
    as for registries; credentials inside the URL are refused.
    """
    from urllib.parse import urlsplit

    context = context or redact(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"{context}: not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise RegistryError(f"{context}: credentials inside a URL are refused",
                            hint="fetch it yourself and pass the file")
    if parts.scheme == "http" and not (insecure or is_loopback(parts.netloc)):
        raise RegistryError(
            f"{context}: plain http to {parts.netloc} refused",
            hint="use https, or --insecure (EBPM_INSECURE_REGISTRIES) if you trust the network",
        )
    host = urlsplit(url).netloc
    transport = Transport(host, insecure=insecure, ca_bundle=ca_bundle, timeout=timeout,
                          offline=offline)
    try:
        try:
            resp = transport._send("GET", url, headers={}, stream=True, context=context)
        except UnreachableError as err:
            cause = err.message.rpartition("unreachable: ")[2] or "unreachable"
            raise UnreachableError(f"{context}: {cause}",
                                   hint="check the URL and the network") from err
        try:
            if resp.status_code != 200:
                status = resp.status_code
                cls = NotFoundError if status == 404 else RegistryError
                raise cls(f"{context}: HTTP {status}", status=status,
                          hint="check the URL" if status in (404, 410) else
                          "the server failed; try again later" if status >= 500 else
                          "the server refused it: check the URL and whether it needs access")
            return read_body(resp, context, max_bytes, cap_name="EBPM_MAX_URL_SIZE")
        finally:
            resp.close()
    finally:
        transport.close()
