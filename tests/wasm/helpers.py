"""Helpers for the wasm tests: where guests come from, and acting once a guest is READY."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUESTS = HERE / "guests"
EXAMPLE = HERE.parents[1] / "examples" / "wasm-execsnoop"


@dataclass(frozen=True)
class Guests:
    """Wasm modules built this session from the example and tests/wasm/guests."""

    execsnoop: bytes
    trap: bytes
    spin: bytes
    forbidden: bytes
    maps: bytes
    tinygo: bytes
    perfbuf: bytes


def when_ready(out: Path, action: Callable[[], None], *, timeout: float = 10.0) -> threading.Thread:
    """Run `action` in a thread once the guest wrote READY to `out` (its stdout file)."""

    def wait() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if out.exists() and b"READY" in out.read_bytes():
                action()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread
