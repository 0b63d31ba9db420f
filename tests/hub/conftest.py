"""Fixtures for the hub tests: `ebpm hub serve` as a real process, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from tests.registryd import die_with_parent

__all__ = ["Served", "hub_serve"]


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    lines: list[str]

    def wait_for_line(self, needle: str, timeout: float = 10.0) -> str:
        """The first output line containing `needle` (reading the server's stdout)."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if needle in line:
                return line
        while time.monotonic() < deadline:
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} within {timeout}s: {self.lines}")


@contextmanager
def hub_serve(*args: str, timeout: float = 20.0,
              env: dict[str, str] | None = None) -> Iterator[Served]:
    """Run `ebpm hub serve ARGS` until the block ends (SIGTERM, then SIGKILL after 5 s)."""
    proc = subprocess.Popen([sys.executable, "-m", "ebpm", "hub", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env if env is not None else dict(os.environ),
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        url = ""
        while time.monotonic() < deadline and not url:
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"hub serve exited: {err}")
            lines.append(line)
            if line.startswith("serving "):
                url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        assert url, f"hub serve did not start within {timeout}s: {lines}"
        requests.get(url + "/", timeout=5).raise_for_status()
        yield Served(url, proc, lines)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
