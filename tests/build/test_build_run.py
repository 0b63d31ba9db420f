"""init -> build -> run for every template, on the real kernel: events reach user space."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ebpm.run import EventSink, run
from tests.build.conftest import BuiltTemplate


def _kernel_probe() -> str:
    """Why this machine cannot load BPF programs, or '' when it can."""
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel lacks BTF (/sys/kernel/btf/vmlinux)"
    if os.geteuid() != 0:
        return "loading BPF needs root (CAP_BPF, CAP_PERFMON)"
    return ""


pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(bool(_kernel_probe()), reason=_kernel_probe() or "ok"),
]


class Until(EventSink):
    """Collects events and sets `stop` once one satisfies `match`."""

    def __init__(self, match: Callable[[dict[str, Any]], bool], stop: threading.Event) -> None:
        self.match = match
        self.stop = stop
        self.found: dict[str, Any] | None = None

    def event(self, event: dict[str, Any]) -> None:
        if self.found is None and self.match(event):
            self.found = event
            self.stop.set()


def _run_until(
    directory: Path, trigger: Callable[[], None], match: Callable[[dict[str, Any]], bool],
    args: tuple[str, ...] = (),
) -> tuple[dict[str, Any] | None, Any]:
    stop = threading.Event()
    reporter = Until(match, stop)

    def keep_triggering() -> None:
        while not stop.wait(0.05):
            trigger()

    worker = threading.Thread(target=keep_triggering, daemon=True)
    worker.start()
    try:
        summary = run(str(directory), args=list(args), duration=10, sink=reporter, stop=stop)
    finally:
        stop.set()
        worker.join()
    return reporter.found, summary


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def test_tracepoint_template_runs(built_templates: dict[str, BuiltTemplate],
                                  tmp_path: Path) -> None:
    cat = tmp_path / "ebpm-tcat"
    shutil.copy("/bin/cat", cat)
    target = tmp_path / "opened-by-ebpm"
    target.write_text("x")
    found, summary = _run_until(
        built_templates["tracepoint"][0],
        lambda: subprocess.run([str(cat), str(target)], capture_output=True, check=True),
        lambda e: _text(e["filename"]) == str(target),
        args=("--comm", "ebpm-tcat"),
    )
    assert found is not None, summary
    assert _text(found["comm"]) == "ebpm-tcat"


def test_kprobe_template_falls_back_to_its_tracepoint(
    built_templates: dict[str, BuiltTemplate], tmp_path: Path
) -> None:
    victim = tmp_path / "deleted-by-ebpm"

    def trigger() -> None:
        victim.write_text("x")
        subprocess.run(["rm", "-f", str(victim)], check=True)

    found, summary = _run_until(built_templates["kprobe"][0], trigger,
                                lambda e: _text(e["filename"]) == str(victim))
    assert found is not None, summary
    assert _text(found["comm"]) == "rm"
    attached = " ".join(summary.attached)
    assert "handle_unlink" in attached  # the kprobe where kprobes exist, else its fallback


def test_uprobe_template_runs(built_templates: dict[str, BuiltTemplate]) -> None:
    found, summary = _run_until(
        built_templates["uprobe"][0],
        lambda: subprocess.run(["getent", "ahosts", "localhost"], capture_output=True),
        lambda e: _text(e["host"]) == "localhost",
    )
    assert found is not None, summary
    assert _text(found["comm"]) == "getent" and found["latency_ns"] > 0


def test_ringbuf_template_runs(built_templates: dict[str, BuiltTemplate]) -> None:
    found, summary = _run_until(
        built_templates["ringbuf"][0],
        lambda: subprocess.run(["/bin/true"], check=True),
        # a `true` exec'd before the attach exits with duration 0 (no start time): wait for
        # one whose exec was seen
        lambda e: bool(e["exit_event"]) and _text(e["comm"]) == "true" and e["duration_ns"] > 0,
    )
    assert found is not None, summary
    assert found["exit_code"] == 0


def test_hist_template_runs(built_templates: dict[str, BuiltTemplate]) -> None:
    found, summary = _run_until(
        built_templates["hist"][0],
        lambda: subprocess.run(["cat", "/etc/hostname"], capture_output=True, check=True),
        lambda e: _text(e["comm"]) == "cat",
    )
    assert found is not None, summary
    assert found["total_bytes"] > 0 and sum(found["slots"]) >= 1
