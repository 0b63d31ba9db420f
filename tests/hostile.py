"""A hostile registry: a small loopback HTTP server that serves real ebpm packages and lies on
demand (wrong sizes, slow drips, gzip bombs, huge error bodies, redirects, foreign realms,
lying HEADs, self-referencing Links), and a way to run ebpm in a child process with its peak RSS.

    server = Hostile().start()
    server.add(artifact, "r", "1.0.0")                       # a package it serves honestly
    server.on("GET", r"/v2/r/tags/list", gzip_bomb(2 << 30))  # ... and a lie
    result = run_child(["pull", f"{server.host}/r:1.0.0"])    # code, out, err, peak RSS
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ebpm.oci.artifact import Artifact
from ebpm.oci.model import MANIFEST_V1

__all__ = ["Hostile", "Seen", "Handler", "send", "stream", "drip", "zeros", "gzip_bomb",
           "error_flood", "redirect", "ChildResult", "run_child", "EBPM", "zeros_digest"]

Handler = Callable[[BaseHTTPRequestHandler, "re.Match[str]"], None]
EBPM = [sys.executable, "-c", "import sys; from ebpm.cli import main; sys.exit(main())"]
CHUNK = 1 << 16


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


def send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"",
         headers: dict[str, str] | None = None, *, length: int | None = None) -> None:
    """One response; `length` may lie about the body's size (the connection then closes)."""
    stream(h, status, [body], headers, length=len(body) if length is None else length)


def stream(h: BaseHTTPRequestHandler, status: int, chunks: Iterable[bytes],
           headers: dict[str, str] | None = None, *, length: int | None = None,
           pause: float = 0.0) -> None:
    """A response whose body comes from `chunks` (never all in memory); without `length` the
    body runs until the connection closes. A client that hangs up ends it quietly."""
    h.send_response(status)
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    if length is not None:
        h.send_header("Content-Length", str(length))
    h.send_header("Connection", "close")
    h.close_connection = True
    h.end_headers()
    if h.command == "HEAD":
        return
    try:
        for chunk in chunks:
            h.wfile.write(chunk)
            h.wfile.flush()
            if pause:
                time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass


def _zero_chunks(n: int) -> Iterator[bytes]:
    block = bytes(CHUNK)
    while n > 0:
        yield block[: min(n, CHUNK)]
        n -= CHUNK


@lru_cache(maxsize=8)
def zeros_digest(n: int) -> str:
    import hashlib

    hasher = hashlib.sha256()
    for chunk in _zero_chunks(n):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def zeros(n: int, *, declared: int | None = None, status: int = 200,
          headers: dict[str, str] | None = None) -> Handler:
    """`n` zero bytes streamed, announced as `declared` (default n; -1: no Content-Length)."""
    def handler(h: BaseHTTPRequestHandler, m: re.Match[str]) -> None:
        length = n if declared is None else (None if declared < 0 else declared)
        stream(h, status, _zero_chunks(n), headers, length=length)
    return handler


def drip(body: bytes, *, every: float = 0.2, status: int = 200,
         headers: dict[str, str] | None = None) -> Handler:
    """The body one byte at a time, `every` seconds apart (a correct Content-Length)."""
    def handler(h: BaseHTTPRequestHandler, m: re.Match[str]) -> None:
        stream(h, status, (body[i:i + 1] for i in range(len(body))), headers,
               length=len(body), pause=every)
    return handler


@lru_cache(maxsize=4)
def _gzip_of_zeros(n: int) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing (level 1: 3x faster)
    out = io.BytesIO()
    for chunk in _zero_chunks(n):
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())
    return out.getvalue()


def gzip_bomb(n: int, *, status: int = 200, content_type: str = "application/json") -> Handler:
    """A gzip-encoded body that inflates to `n` bytes (a JSON-looking start, then zeros)."""
    def handler(h: BaseHTTPRequestHandler, m: re.Match[str]) -> None:
        body = _gzip_of_zeros(n)
        stream(h, status, [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)],
               {"Content-Type": content_type, "Content-Encoding": "gzip"}, length=len(body))
    return handler


def error_flood(status: int, n: int) -> Handler:
    """An error answer with an `n`-byte body (JSON that never ends)."""
    def handler(h: BaseHTTPRequestHandler, m: re.Match[str]) -> None:
        head = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"'
        stream(h, status, [head, *_flood(n)], {"Content-Type": "application/json"},
               length=len(head) + n)
    return handler


def _flood(n: int) -> Iterator[bytes]:
    block = b"x" * CHUNK
    while n > 0:
        yield block[: min(n, CHUNK)]
        n -= CHUNK


def redirect(location: str, status: int = 307) -> Handler:
    def handler(h: BaseHTTPRequestHandler, m: re.Match[str]) -> None:
        send(h, status, headers={"Location": location.format(**m.groupdict())})
    return handler


@dataclass
class Hostile:
    """A loopback registry serving the packages it was given, except where a lie is set."""

    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    lies: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None
    bind: str = "127.0.0.1"
    tls: tuple[str, str] | None = None  # (certificate, key) PEM files: serve https

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def on(self, method: str, path: str, handler: Handler) -> Hostile:
        """Answer `method` on paths matching the regex `path` (full match, query included)
        with `handler`; the latest lie set for a path wins."""
        self.lies.insert(0, (method, re.compile(path), handler))
        return self

    def add(self, artifact: Artifact, repository: str, tag: str) -> str:
        """Serve a packed package honestly under `repository:tag` (and its digest)."""
        for blob in artifact.blobs:
            self.blobs[blob.descriptor.digest] = blob.data
        self.put_manifest(repository, tag, artifact.manifest_bytes)
        return artifact.digest

    def put_manifest(self, repository: str, tag: str, data: bytes,
                     media_type: str = MANIFEST_V1) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[(repository, tag)] = (data, media_type)
        self.manifests[(repository, digest)] = (data, media_type)
        return digest

    def requests(self, method: str, pattern: str) -> list[Seen]:
        rx = re.compile(pattern)
        return [s for s in self.seen if s.method == method and rx.fullmatch(s.path)]

    def _honest(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        path, _, query = h.path.partition("?")
        if h.command in ("POST", "PUT", "PATCH"):
            return self._push(h, path, query, body)
        if path == "/v2/":
            return send(h, 200, b"{}", {"Content-Type": "application/json"})
        m = re.fullmatch(r"/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)", path)
        if m and (m["repo"], m["ref"]) in self.manifests:
            data, media_type = self.manifests[(m["repo"], m["ref"])]
            import hashlib

            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            return send(h, 200, data, {"Content-Type": media_type,
                                       "Docker-Content-Digest": digest})
        m = re.fullmatch(r"/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})", path)
        if m and m["digest"] in self.blobs:
            return send(h, 200, self.blobs[m["digest"]],
                        {"Content-Type": "application/octet-stream",
                         "Docker-Content-Digest": m["digest"]})
        m = re.fullmatch(r"/v2/(?P<repo>.+)/tags/list", path)
        if m:
            tags = sorted({ref for repo, ref in self.manifests
                           if repo == m["repo"] and not ref.startswith("sha256:")})
            return send(h, 200, json.dumps({"name": m["repo"], "tags": tags}).encode(),
                        {"Content-Type": "application/json"})
        error = {"errors": [{"code": "NAME_UNKNOWN", "message": "not here"}]}
        send(h, 404, json.dumps(error).encode(), {"Content-Type": "application/json"})

    def _push(self, h: BaseHTTPRequestHandler, path: str, query: str, body: bytes) -> None:
        """Uploads as distribution takes them (monolithic POST + PUT, manifests by PUT)."""
        import hashlib
        from urllib.parse import parse_qs

        m = re.fullmatch(r"/v2/(?P<repo>.+)/blobs/uploads/(?P<id>[^/]*)", path)
        if m and h.command == "POST":
            return send(h, 202, headers={"Location": f"/v2/{m['repo']}/blobs/uploads/up1"})
        if m and h.command == "PUT":
            digest = parse_qs(query).get("digest", [""])[0]
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                return send(h, 400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
            self.blobs[digest] = body
            return send(h, 201, headers={"Docker-Content-Digest": digest})
        m = re.fullmatch(r"/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)", path)
        if m and h.command == "PUT":
            media_type = h.headers.get("Content-Type", MANIFEST_V1)
            digest = self.put_manifest(m["repo"], m["ref"], body, media_type)
            return send(h, 201, headers={"Docker-Content-Digest": digest})
        send(h, 405, b"")

    def start(self) -> Hostile:
        outer = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                for method, rx, handler in list(outer.lies):
                    m = rx.fullmatch(self.path)
                    if method == self.command and m:
                        return handler(self, m)
                return outer._honest(self, body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.bind, 0), RequestHandler)
        if self.tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


@dataclass
class ChildResult:
    code: int
    out: str
    err: str
    peak_rss: int  # bytes (ru_maxrss of the child alone)
    seconds: float


# The peak RSS of the command alone: Linux keeps a process's high-water mark across execve, so
# a child forked straight from this (large) test process would report our RSS as its own. A
# small spawner forks the command and reports the command's rusage on a pipe.
_SPAWNER = r"""
import os, signal, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
os.close(fd)
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
os._exit(os.waitstatus_to_exitcode(status))
"""


def run_child(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60,
              cwd: str | Path | None = None, stdin: bytes | None = None,
              prefix: list[str] | None = None) -> ChildResult:
    """Run `ebpm ARGS` in a child process (this interpreter, this checkout) and return its exit
    status, output and peak RSS (its own, measured through a small spawner). Killed (code -9)
    after `timeout` seconds."""
    import signal
    import tempfile

    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    command = [*(prefix or []), *EBPM, *args]
    if prefix:  # the prefix (e.g. setpriv) execs the command: resolve its path for execv
        import shutil

        command[0] = shutil.which(command[0]) or command[0]
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", _SPAWNER, str(write_fd), *command], stdout=out, stderr=err,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, env=full_env,
            cwd=cwd, pass_fds=(write_fd,), start_new_session=True)
        os.close(write_fd)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.returncode = -9
        with os.fdopen(read_fd, "rb") as report:
            maxrss = int(report.read() or b"0")
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return ChildResult(proc.returncode, out.read().decode(errors="replace"),
                           err.read().decode(errors="replace"), maxrss * 1024, seconds)


def gzip_json(doc: object) -> bytes:
    return gzip.compress(json.dumps(doc).encode())
