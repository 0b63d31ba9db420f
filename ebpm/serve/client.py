"""Talk to a running agent (for `ebpm ps/stop/logs/run --detach`): stdlib HTTP over the Unix
socket, or over TCP with the bearer token (and TLS for https:// addresses).

The agent is local (or an explicit address): this client does not go through
`ebpm.oci.transport`, which is the registry's transport (auth challenges, retries, offline).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from ebpm.errors import (
    EbpmError,
    LoadError,
    NotFoundError,
    SignatureError,
    UnreachableError,
    UsageError,
)
from ebpm.serve.endpoint import Endpoint, default_socket, parse_endpoint

__all__ = ["AGENT_ENV", "AgentClient", "agent_endpoint", "AgentError"]

AGENT_ENV = "EBPM_AGENT"


class AgentError(EbpmError):
    """The agent answered with an error."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 0) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def agent_endpoint(address: str | None = None) -> Endpoint:
    """ADDRESS, else $EBPM_AGENT, else the default Unix socket."""
    text = address or os.environ.get(AGENT_ENV, "")
    return parse_endpoint(text) if text else Endpoint(path=str(default_socket()))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


_ERRORS: dict[int, type[EbpmError]] = {400: UsageError, 404: NotFoundError,
                                       403: SignatureError, 422: LoadError}


class AgentClient:
    """Requests to one agent; errors come back as EbpmError with the agent's message."""

    def __init__(self, endpoint: Endpoint | str | None = None, *, token: str | None = None,
                 ca_file: str | None = None, timeout: float | None = 60.0) -> None:
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else agent_endpoint(endpoint)
        self.token = token
        self.ca_file = ca_file
        self.timeout = timeout

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.is_unix:
            return _UnixConnection(ep.path, timeout)
        if ep.tls:
            context = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)

    def _send(self, method: str, path: str, body: Any = None,
              streaming: bool = False) -> tuple[http.client.HTTPConnection,
                                                http.client.HTTPResponse]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection(None if streaming else self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise UnreachableError(
                f"agent {self.endpoint}: {getattr(err, 'strerror', None) or err}",
                hint="start one with `ebpm serve` (or set EBPM_AGENT to its address)") from err
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            raise self._error(resp.status, raw)
        return conn, resp

    def _error(self, status: int, raw: bytes) -> EbpmError:
        try:
            doc = json.loads(raw)
            message, hint = str(doc.get("error", "")), doc.get("hint")
            tail = doc.get("verifier_log")
            if tail:
                message += "\n" + "\n".join("  " + line for line in str(tail).splitlines())
        except (ValueError, AttributeError):
            message, hint = raw.decode(errors="replace").strip(), None
        if status == 401:
            return AgentError(f"agent {self.endpoint}: {message or 'unauthorized'}",
                              hint="pass the agent's token (EBPM_AGENT_TOKEN or --token-file)",
                              status=status)
        cls = _ERRORS.get(status)
        if cls is not None:
            return cls(message, hint=hint)
        return AgentError(f"agent: {message} (HTTP {status})", hint=hint, status=status)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer."""
        conn, resp = self._send(method, path, body)
        try:
            raw = resp.read()
        finally:
            conn.close()
        return json.loads(raw) if raw else None

    def text(self, path: str) -> str:
        conn, resp = self._send("GET", path)
        try:
            return resp.read().decode()
        finally:
            conn.close()

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        """NDJSON records of a streaming endpoint, as they arrive (no read timeout)."""
        conn, resp = self._send("GET", path, streaming=True)
        try:
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()
