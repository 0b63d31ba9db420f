"""Helpers shared by the benchmarks: timing whole commands and reporting medians and ratios."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
EBPM = str(VENV_BIN / "ebpm")


def run_quiet(cmd: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(a: Callable[[], object], b: Callable[[], object], rounds: int,
              setup: Callable[[], object] | None = None) -> tuple[list[float], list[float]]:
    """Time a and b alternately, `rounds` times each (setup before every run)."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            if setup:
                setup()
            out.append(timed(fn))
    return ta, tb


def ratio_line(label: str, ours: list[float], peer: list[float], peer_name: str) -> str:
    mo, mp = statistics.median(ours), statistics.median(peer)
    return (f"{label}: ebpm {mo * 1000:.1f} ms, {peer_name} {mp * 1000:.1f} ms, "
            f"ratio {mo / mp:.2f}x (medians of {len(ours)})")
