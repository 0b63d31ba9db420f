"""Real git servers for tests: bare repositories served by `git daemon` and by
`git http-backend` (behind a tiny CGI server), both on a free 127.0.0.1 port.

`Work` makes commits in a working repository and pushes them to a bare one under a served root.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.registryd import free_port

__all__ = ["Work", "GitDaemon", "GitHttp", "git"]

_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        input: bytes | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **_ENV, **(env or {})},
                         input=input, capture_output=True, check=True)
    return out.stdout.decode().strip()


class Work:
    """A working repository whose commits are pushed to `bare` (created empty)."""

    def __init__(self, root: Path, bare: Path) -> None:
        self.dir = root
        self.bare = bare
        self.time = 1_700_000_000
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        git("init", "--quiet", "--initial-branch=main", str(root))
        git("remote", "add", "origin", str(bare), cwd=root)

    def commit(self, files: dict[str, str | bytes | None], message: str = "change",
               branch: str = "main", tag: str = "") -> str:
        """Write (None: delete) files, commit, push the branch (and tag); returns the commit."""
        for name, content in files.items():
            path = self.dir / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        self.time += 60
        stamp = {"GIT_AUTHOR_DATE": f"@{self.time} +0000",
                 "GIT_COMMITTER_DATE": f"@{self.time} +0000"}
        git("add", "-A", cwd=self.dir)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.dir, env=stamp)
        commit = git("rev-parse", "HEAD", cwd=self.dir)
        git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=self.dir)
        if tag:
            git("tag", "-f", tag, cwd=self.dir)
            git("push", "--quiet", "--force", "origin", f"refs/tags/{tag}", cwd=self.dir)
        return commit

    def symlink(self, name: str, target: str) -> None:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)


def _wait(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class GitDaemon:
    """`git daemon` exporting every repository under `base` at git://127.0.0.1:PORT/."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["git", "daemon", f"--base-path={base}", "--export-all", "--reuseaddr",
             "--informative-errors", "--listen=127.0.0.1", f"--port={self.port}", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait(self.port, self.proc)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _CGI(BaseHTTPRequestHandler):
    root: Path
    requests: list[str]

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        self.requests.append(path)
        env = {
            "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_ADDR": "127.0.0.1", "PATH": os.environ.get("PATH", ""),
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        env["CONTENT_LENGTH"] = str(len(body))
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                             check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class GitHttp:
    """`git http-backend` serving every repository under `root` at http://127.0.0.1:PORT/."""

    def __init__(self, root: Path) -> None:
        handler = type("Handler", (_CGI,), {"root": root, "requests": []})
        self.requests: list[str] = handler.requests  # type: ignore[attr-defined]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
