"""Who may talk to the agent: peer credentials on the Unix socket, a bearer token on TCP.

The Unix socket is mode 0600 and, on top of that, every connection's peer credentials
(SO_PEERCRED) are checked before a byte of HTTP is read: only root and the agent's own user (and
uids given with --allow-uid) are served. On TCP every request needs `Authorization: Bearer
TOKEN`; a missing or wrong token gets 401 before the request reaches a route.
"""

from __future__ import annotations

import os
import socket

from ebpm.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # (types only: typing is not imported by the agent's clients)
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping
    from typing import Any

    Scope = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
    Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = [
    "TOKEN_ENV",
    "read_token",
    "peer_credentials",
    "token_matches",
    "BearerAuth",
    "peer_checked_protocol",
]

TOKEN_ENV = "EBPM_AGENT_TOKEN"
_MIN_TOKEN = 16



def read_token(path: str | None) -> str | None:
    """The bearer token from FILE (first line) or $EBPM_AGENT_TOKEN; None when neither."""
    if path:
        try:
            with open(path) as f:
                token = f.read().strip().splitlines()[0].strip()
        except (OSError, IndexError) as err:
            raise UsageError(f"token file {path}: cannot read a token",
                             hint="write one line, e.g. `openssl rand -hex 32 > FILE`") from err
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    if len(token) < _MIN_TOKEN:
        raise UsageError(f"bearer token: {len(token)} characters is too short "
                         f"(at least {_MIN_TOKEN})", hint="use `openssl rand -hex 32`")
    return token


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    import struct  # (the agent's side only)

    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def token_matches(header: bytes | None, token: str) -> bool:
    """`Authorization: Bearer TOKEN`, compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return False
    import hmac  # the agent's side only: clients read the token and send it

    return hmac.compare_digest(given.strip().encode(), token.encode())


class BearerAuth:
    """ASGI middleware for a TCP listener: requests without the right bearer token get 401 and
    go no further. `exempt` paths (/healthz) are served without one."""

    def __init__(self, app: ASGIApp, *, token: str, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.token = token
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt or _has_token(
                scope, self.token):
            await self.app(scope, receive, send)
            return
        body = b'{"error":"unauthorized: a valid bearer token is required"}\n'
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="ebpm"')]})
        await send({"type": "http.response.body", "body": body})


def _has_token(scope: Scope, token: str) -> bool:
    header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
    return token_matches(header, token)


def peer_checked_protocol(allowed_uids: Iterable[int]) -> type:
    """uvicorn's h11 protocol, closing Unix connections from users not in `allowed_uids`."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    allowed = frozenset(allowed_uids)

    class PeerCheckedProtocol(H11Protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is None or sock.family != socket.AF_UNIX:
                return
            try:
                pid, uid, _gid = peer_credentials(sock)
            except OSError:
                transport.close()
                return
            if uid not in allowed:
                import logging  # the agent's side (clients read the token only)

                logging.getLogger("ebpm.serve").warning(
                    "refused a connection from uid %d (pid %d): not allowed", uid, pid)
                transport.close()

    return PeerCheckedProtocol
