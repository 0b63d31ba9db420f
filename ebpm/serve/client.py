"""Talk to a running agent (for `ebpm run --detach`, ps, stop, logs and the benches): HTTP/1.1
over the Unix socket, or over TCP with the bearer token (and TLS for https:// addresses).

The agent is local (or an explicit address): this client does not go through
`ebpm.oci.transport`, which is the registry's transport (auth challenges, retries, offline,
proxies). It speaks the little HTTP the agent needs — one request per connection, an answer
sized by Content-Length or chunked (event streams), read as it arrives — on a plain socket, so
that `ebpm run --detach` and `ebpm logs` start without importing http.client (its email
parser and ssl: ~10 ms); ssl is imported for https:// agents only.
"""

from __future__ import annotations

import json
import os
import socket
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
_MAX_LINE = 64 << 10  # bytes: the longest status or header line accepted


class AgentError(EbpmError):
    """The agent answered with an error."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 0) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def agent_endpoint(address: str | None = None) -> Endpoint:
    """ADDRESS, else $EBPM_AGENT, else the default Unix socket."""
    text = address or os.environ.get(AGENT_ENV, "")
    return parse_endpoint(text) if text else Endpoint(path=str(default_socket()))


class _Malformed(Exception):
    """The peer's bytes are not an HTTP/1.1 answer."""


class _Answer:
    """An HTTP/1.1 answer on a connection: the status and headers at once, the body as it
    arrives (chunked or sized by Content-Length, else until the peer closes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        parts = self._line().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Malformed("not an HTTP/1.1 answer")
        self.status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n"):
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise _Malformed("malformed header line")
            headers[name.strip().lower()] = value.strip()
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        self.length = int(length) if length.isdigit() and not self.chunked else None

    def _line(self) -> bytes:
        line = self.file.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise _Malformed("the connection ended in the middle of the answer")
        return line

    def chunks(self) -> Iterator[bytes]:
        """The body, a piece at a time as it arrives."""
        if self.chunked:
            while True:
                size = int(self._line().split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self._line() not in (b"\r\n", b"\n"):  # trailers
                        pass
                    return
                data = self.file.read(size)
                if len(data) < size or self._line() not in (b"\r\n", b"\n"):
                    raise _Malformed("a chunk ended early")
                yield data
        elif self.length is not None:
            left = self.length
            while left > 0:
                data = self.file.read1(min(left, 1 << 16))
                if not data:
                    raise _Malformed("the body ended early")
                left -= len(data)
                yield data
        else:
            while data := self.file.read1(1 << 16):
                yield data

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self) -> Iterator[bytes]:
        """The body's lines (NDJSON records) as they arrive."""
        pending = b""
        for data in self.chunks():
            pending += data
            *complete, pending = pending.split(b"\n")
            yield from complete
        if pending:
            yield pending

    def close(self) -> None:
        self.file.close()
        self.sock.close()


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

    def _connect(self, timeout: float | None) -> socket.socket:
        ep = self.endpoint
        if ep.is_unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(ep.path)
            except OSError:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        if not ep.tls:
            return sock
        import ssl

        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            return context.wrap_socket(sock, server_hostname=ep.host)
        except BaseException:
            sock.close()
            raise

    def _send(self, method: str, path: str, body: Any = None,
              streaming: bool = False) -> _Answer:
        ep = self.endpoint
        host = "localhost" if ep.is_unix else f"{ep.host}:{ep.port}"
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json",
                "Connection: close", "User-Agent: ebpm"]
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head.append("Content-Type: application/json")
        if data or method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(data)}")
        if self.token:
            head.append(f"Authorization: Bearer {self.token}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + data
        try:
            sock = self._connect(None if streaming else self.timeout)
        except OSError as err:
            raise self._unreachable(err) from err
        try:
            sock.sendall(request)
            answer = _Answer(sock)
        except (OSError, _Malformed, ValueError) as err:
            sock.close()
            raise self._unreachable(err) from err
        if answer.status >= 400:
            try:
                raw = answer.read()
            except (OSError, _Malformed, ValueError) as err:
                raise self._unreachable(err) from err
            finally:
                answer.close()
            raise self._error(answer.status, raw)
        return answer

    def _unreachable(self, err: BaseException) -> UnreachableError:
        return UnreachableError(
            f"agent {self.endpoint}: {getattr(err, 'strerror', None) or err}",
            hint="start one with `ebpm serve` (or set EBPM_AGENT to its address)")

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
        answer = self._send(method, path, body)
        try:
            raw = answer.read()
        except (OSError, _Malformed, ValueError) as err:
            raise self._unreachable(err) from err
        finally:
            answer.close()
        return json.loads(raw) if raw else None

    def text(self, path: str) -> str:
        answer = self._send("GET", path)
        try:
            return answer.read().decode()
        except (OSError, _Malformed, ValueError) as err:
            raise self._unreachable(err) from err
        finally:
            answer.close()

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        """NDJSON records of a streaming endpoint, as they arrive (no read timeout)."""
        answer = self._send("GET", path, streaming=True)
        try:
            for line in answer.lines():
                if line.strip():
                    yield json.loads(line)
        except (OSError, _Malformed, ValueError) as err:
            raise self._unreachable(err) from err
        finally:
            answer.close()
