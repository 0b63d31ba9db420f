"""Helpers for the wasm tests: wait for a guest's READY line, then act from another thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path


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
