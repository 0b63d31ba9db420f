"""The sandbox: traps, hard stops, signals, the program-type policy, memory and pointer checks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ebpm.errors import SandboxViolationError, WasmError
from ebpm.loader.wasm import run_guest
from tests.wasm.helpers import Guests, when_ready


def test_trap_in_event_callback_is_survived(guests: Guests, no_leaks: None, tmp_path: Path) -> None:
    """...and the guest's files are closed as the error leaves, not when its traceback (which
    holds the run's frame, and so the store) goes: the agent reads a guest's stdout from a
    fifo, and saw its end 10 s late (its reader's join timeout)."""
    out = tmp_path / "stdout"
    with when_ready(out, lambda: subprocess.run(["/bin/true"], check=True)):
        with pytest.raises(WasmError, match="trapped") as trapped:
            run_guest(guests.trap, name="trap", duration=20, stdout=out)
    assert trapped.value.__traceback__ is not None  # still held here
    open_files = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}")}
    assert str(out) not in open_files


def test_spinning_guest_gets_the_hard_stop(guests: Guests, no_leaks: None, tmp_path: Path) -> None:
    result = run_guest(guests.spin, name="spin", duration=0.2, grace=0.2, stdout=tmp_path / "o")
    assert result.hard_stopped
    assert result.stop_reason == "duration"
    assert result.exit_code == 124


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_gracefully(
    guests: Guests, no_leaks: None, tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "stdout"
    before = signal.getsignal(signum)
    with when_ready(out, lambda: os.kill(os.getpid(), signum)):
        result = run_guest(guests.execsnoop, args=["--ppid", "1"], duration=20, stdout=out)
    assert (result.exit_code, result.stop_reason, result.hard_stopped) == (0, "signal", False)
    assert signal.getsignal(signum) is before  # restored


def test_second_signal_stops_a_spinning_guest_at_once(
    guests: Guests, no_leaks: None, tmp_path: Path
) -> None:
    import time

    out = tmp_path / "stdout"

    def twice() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    with when_ready(out, twice):
        result = run_guest(guests.spin, grace=60, duration=20, stdout=out)
    assert (result.exit_code, result.stop_reason, result.hard_stopped) == (130, "signal", True)


def test_forbidden_program_type_is_refused(guests: Guests, no_leaks: None, tmp_path: Path) -> None:
    out = tmp_path / "stdout"
    with pytest.raises(SandboxViolationError, match="xdp program") as err:
        run_guest(guests.forbidden, name="forbidden", stdout=out)
    assert "--allow" in (err.value.hint or "")
    assert "LOAD FAILED" in out.read_text()


def test_xdp_loads_when_allowed(guests: Guests, no_leaks: None, tmp_path: Path) -> None:
    out = tmp_path / "stdout"
    result = run_guest(guests.forbidden, allow_types=["xdp"], stdout=out)
    assert result.exit_code == 0
    assert "LOADED" in out.read_text()


def test_memory_cap(guests: Guests, kernel: None, tmp_path: Path) -> None:
    with pytest.raises(SandboxViolationError, match="memory"):
        run_guest(guests.maps, memory_limit=64 << 10, stdout=tmp_path / "o")


def test_map_operations_are_checked_and_sized(
    guests: Guests, no_leaks: None, tmp_path: Path
) -> None:
    from ebpm.loader import libbpf

    out = tmp_path / "stdout"
    result = run_guest(guests.maps, stdout=out)
    text = out.read_text()
    assert result.exit_code == 0, text
    assert "UPDATE 0" in text and "LOOKUP 0" in text
    assert f"PERCPU ncpus={libbpf.num_possible_cpus()} ok=1" in text
    assert "ITER n=3 sum=33" in text  # first key through a real NULL, then each next key
    efault, ebadf = -14, -9  # Linux numbers: the raw imports return them unchanged
    assert f"FAULT key={efault}" in text and f"FAULT value={efault}" in text
    assert f"BADFD {ebadf}" in text
    assert "FDMAP -1" in text  # -EPERM: no host fds through prog arrays and the like
    assert re.search(r"BADNAME -\d+", text)


def test_tinygo_callback_wrapper(guests: Guests, no_leaks: None, tmp_path: Path) -> None:
    import threading

    out = tmp_path / "stdout"
    stop = threading.Event()

    def spawn() -> None:
        subprocess.run(["/bin/true"], check=True)
        subprocess.run(["/bin/true"], check=True)
        stop.set()

    with when_ready(out, spawn):
        result = run_guest(guests.tinygo, args=[str(os.getpid())], stop=stop, duration=20,
                           stdout=out)
    text = out.read_text()
    assert result.exit_code == 0, text
    assert text.count("GO comm=true") == 2, text
    assert "END err=-4 events=2" in text  # the graceful stop: -EINTR


def test_perf_buffer_delivers_every_record(guests: Guests, no_leaks: None, tmp_path: Path) -> None:
    """Every record sent after the guest's perf_buffer__new arrives, those sent before its
    first poll too: the guest waits 500 ms between READY and that poll (the host opens a perf
    event array's buffer as the object loads; made at the first poll, it dropped these)."""
    out = tmp_path / "stdout"
    # the target is a child that makes its 50 getppid() calls once told to (after READY): the
    # pytest process may make others of its own (a thread of an earlier test), which would count
    caller = subprocess.Popen(
        [sys.executable, "-c", "import os, sys\nsys.stdin.readline()\n"
         "for _ in range(50): os.getppid()"],
        stdin=subprocess.PIPE,
    )
    assert caller.stdin is not None
    stdin = caller.stdin

    def calls() -> None:
        stdin.write(b"go\n")
        stdin.close()

    try:
        with when_ready(out, calls):
            result = run_guest(guests.perfbuf, args=[str(caller.pid), "50", "500"],
                               duration=20, stdout=out)
    finally:
        if not stdin.closed:
            stdin.close()
        caller.wait(timeout=10)
    text = out.read_text()
    assert result.exit_code == 0, text
    seqs = [int(s) for s in re.findall(r"^PERF pid=\d+ seq=(\d+)$", text, re.M)]
    assert sorted(seqs) == list(range(50)), f"{result}\n{text}"
    assert "DONE 50" in text
