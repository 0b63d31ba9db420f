"""Talk to a running agent (for `ebpm run --detach`, ps, stop, logs and the benches): HTTP/1.1
over the Unix socket, or over TCP with the bearer token (and TLS for https:// addresses).

The agent is local (or an explicit address): this client does not go through
`ebpm.oci.transport`, which is the registry's transport (auth challenges, retries, offline,
proxies). One request per connection, the answer (sized by Content-Length, or chunked for
event streams) read as it arrives by `ebpm.oci.http.Connection`, ebpm's one HTTP/1.1 reader,
so that `ebpm run --detach` and `ebpm logs` start without importing http.client (its email
parser and ssl: ~10 ms); ssl is imported for https:// agents only.
"""

from __future__ import annotations

import json
import os
import socket

from ebpm.errors import (
    EbpmError,
    LoadError,
    NotFoundError,
    SignatureError,
    UnreachableError,
    UsageError,
)
from ebpm.oci.http import Connection, ProtocolError, connect, not_tls
from ebpm.serve.endpoint import Endpoint, default_socket, parse_endpoint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from ebpm.loader.snapshots import MapSnapshot

__all__ = ["AGENT_ENV", "AgentClient", "agent_endpoint", "AgentError"]

AGENT_ENV = "EBPM_AGENT"


class AgentError(EbpmError):
    """The agent answered with an error."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 0) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after: float | None = None  # seconds a 503 said to wait (Retry-After)


BUSY_WAIT = 10.0  # seconds a GET waits in all for an agent at its caps (503, Retry-After)


def _seconds(value: str | None) -> float | None:
    """Retry-After's delay in seconds (the agent's form), None when it has none."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= BUSY_WAIT else None


def agent_endpoint(address: str | None = None) -> Endpoint:
    """ADDRESS, else $EBPM_AGENT, else the default Unix socket."""
    text = address or os.environ.get(AGENT_ENV, "")
    return parse_endpoint(text) if text else Endpoint(path=str(default_socket()))


class _Answer:
    """An answer on one connection (`ebpm.oci.http.Connection`, the one HTTP/1.1 reader): its
    status at once, its body as it arrives."""

    def __init__(self, conn: Connection, method: str) -> None:
        self.conn = conn
        self.status, _, self.headers = conn.read_head(method)

    def chunks(self) -> Iterator[bytes]:
        """The body, a piece at a time as it arrives."""
        while data := self.conn.read_body():
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
        self.conn.close()


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
        sock = connect(ep.host, ep.port, timeout)
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
        """The answer to one request; a GET the agent is too busy for (503 with Retry-After:
        its caps on output reads and event streams) is asked again after the wait it gives,
        for at most BUSY_WAIT seconds in all."""
        waited = 0.0
        while True:
            try:
                return self._send_once(method, path, body, streaming)
            except AgentError as err:
                wait = err.retry_after
                if method != "GET" or wait is None or waited + wait > BUSY_WAIT:
                    raise
            import time

            time.sleep(wait)
            waited += wait

    def _send_once(self, method: str, path: str, body: Any, streaming: bool) -> _Answer:
        ep = self.endpoint
        headers = {"Host": "localhost" if ep.is_unix else f"{ep.host}:{ep.port}",
                   "Accept": "application/json", "Connection": "close", "User-Agent": "ebpm"}
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if data or method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(data))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            sock = self._connect(None if streaming else self.timeout)
        except OSError as err:
            raise self._unreachable(err) from err
        conn = Connection(sock)
        try:
            conn.send(method, path, headers, data)
            answer = _Answer(conn, method)
        except (OSError, ProtocolError) as err:
            conn.close()
            raise self._unreachable(err) from err
        if answer.status >= 400:
            try:
                raw = answer.read()
            except (OSError, ProtocolError) as err:
                raise self._unreachable(err) from err
            finally:
                answer.close()
            error = self._error(answer.status, raw)
            if answer.status == 503 and isinstance(error, AgentError):
                error.retry_after = _seconds(answer.headers.get("Retry-After"))
            raise error
        return answer

    def _unreachable(self, err: BaseException) -> UnreachableError:
        if not_tls(err):
            return UnreachableError(f"agent {self.endpoint}: it answers in plain http, not https",
                                    hint="give its address as http://HOST:PORT")
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
        except (OSError, ProtocolError, ValueError) as err:
            raise self._unreachable(err) from err
        finally:
            answer.close()
        return json.loads(raw) if raw else None

    def maps(self, program_id: str) -> list[MapSnapshot]:
        """A program's result maps now (`GET /v1/programs/ID/maps`), as `ebpm run` snapshots
        them: histograms with their log2 `slots` (bucket i is slot i)."""
        from ebpm.loader.snapshots import MapSnapshot

        out = []
        for m in self.call("GET", f"/v1/programs/{program_id}/maps").get("maps", ()):
            rows = []
            for row in m.get("rows", ()):
                if m.get("kind") == "hist":
                    value = {k: v for k, v in row.items() if k not in ("key", "buckets")}
                    value["slots"] = [int(b["count"]) for b in row.get("buckets", ())]
                else:
                    value = row.get("value")
                rows.append((row.get("key"), value))
            out.append(MapSnapshot(str(m["map"]), str(m.get("kind", "table")), tuple(rows),
                                   str(m.get("unit", ""))))
        return out

    def output(self, program_id: str, take: Callable[[str, bytes], None]) -> dict[str, Any]:
        """A program's iterators run once (`GET /v1/programs/ID/output`): `take(program,
        data)` gets what each wrote, as `ebpm run` hands it to its sink (lines with their
        newline); returns the answer's end record (bytes of each, truncated, error)."""
        from ebpm.run.lines import record_bytes

        end: dict[str, Any] = {}
        for record in self.stream(f"/v1/programs/{program_id}/output"):
            if "_ebpm" in record:
                end = record
                continue
            take(str(record.get("iter", "")), record_bytes(record))
        return end

    def text(self, path: str) -> str:
        answer = self._send("GET", path)
        try:
            return answer.read().decode()
        except (OSError, ProtocolError, ValueError) as err:
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
        except (OSError, ProtocolError, ValueError) as err:
            raise self._unreachable(err) from err
        finally:
            answer.close()
