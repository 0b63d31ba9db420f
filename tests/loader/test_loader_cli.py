"""`ebpm run` as a user types it: JSON lines, the table, `-- -h`, SIGTERM, errors."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.loader.conftest import ROOT, Trigger, require_bpf

pytestmark = pytest.mark.kernel
EBPM = [str(Path(sys.executable).with_name("ebpm"))]


def _ebpm(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EBPM, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_help_lists_package_flags(built) -> None:
    proc = _ebpm("run", str(built("opensnoop")), "--", "-h")
    assert proc.returncode == 0, proc.stderr
    assert "--pid INT   trace this process id only" in proc.stdout
    assert "--failed    show failed opens only" in proc.stdout


def test_json_lines_and_max_events(built) -> None:
    require_bpf()
    path = f"/tmp/ebpm-cli-{uuid.uuid4().hex}"
    proc = subprocess.Popen([*EBPM, "run", "--json", "--max-events", "2", "--duration", "10",
                             str(built("opensnoop")), "--", "--failed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def touch() -> None:
        try:
            open(path).close()
        except FileNotFoundError:
            pass

    with Trigger(touch, 0.05):
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    events = [e for e in lines if "ebpm" not in e]  # the rest: the start and summary records
    assert [r["ebpm"] for r in lines if "ebpm" in r] == ["start", "summary"]
    assert len(events) == 2 and all(e["ret"] < 0 for e in events)
    assert set(events[0]) == {"ts", "pid", "uid", "ret", "flags", "comm", "fname"}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_table_and_signal_detach(built, stop: signal.Signals) -> None:
    require_bpf()
    proc = subprocess.Popen([*EBPM, "run", str(built("exitsnoop"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Trigger(lambda: subprocess.run(["/bin/sh", "-c", "exit 7"]), 0.05):
        header = proc.stdout.readline() if proc.stdout else ""
        first = proc.stdout.readline() if proc.stdout else ""
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert header.split() == ["START_TIME", "EXIT_TIME", "PID", "TID", "PPID", "SIG",
                              "EXIT_CODE", "COMM"]
    assert len(first.split()) == 8
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # programs are freed after an RCU grace period
        names = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True)
        if "sched_process_e" not in names.stdout:
            break
        time.sleep(0.1)
    assert "sched_process_e" not in names.stdout


def test_missing_target_is_a_clean_error(tmp_path: Path) -> None:
    proc = _ebpm("run", str(tmp_path / "nope.bpf.o"))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {tmp_path / 'nope.bpf.o'}: no such file")


def test_unbuilt_package_dir_says_build_it(tmp_path: Path) -> None:
    (tmp_path / "ebpm.toml").write_text('[package]\nname = "x"\nversion = "1.0.0"\n')
    proc = _ebpm("run", str(tmp_path))
    assert proc.returncode == 1
    assert f"hint: run `ebpm build {tmp_path}` first" in proc.stderr


def test_table_header_is_bold_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The header is plain ANSI bold on a terminal (no rich), plain text elsewhere."""
    import io

    from ebpm.cli.printers import TablePrinter

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    for out, header in ((Tty(), "\x1b[1mPID   COMM\x1b[0m"), (io.StringIO(), "PID   COMM")):
        TablePrinter(out).event({"pid": 7, "comm": "sh"})
        assert out.getvalue().splitlines() == [header, "7     sh"]


def test_both_printers_hand_over_the_start_up_as_the_run_gets_under_way() -> None:
    """`ebpm run` hands the cycle collector's `resume` to its printer (`on_start`, ebpm.cli.
    startup): the table and the JSON printer alike call it once, as the run starts, before
    their start line or record (a printer that did not would run the whole event loop
    without the collector)."""
    import io
    from collections.abc import Callable

    from ebpm.cli.printers import JsonPrinter, TablePrinter
    from ebpm.run.sink import RunStart

    def table(out: io.StringIO, hook: Callable[[], None]) -> TablePrinter:
        return TablePrinter(out, on_start=hook)

    def lines(out: io.StringIO, hook: Callable[[], None]) -> JsonPrinter:
        return JsonPrinter(out, on_start=hook)

    for make in (table, lines):
        out = io.StringIO()
        seen: list[str] = []
        printer = make(out, lambda: seen.append(out.getvalue()))  # noqa: B023 - called below
        printer.start(RunStart("p", "native"))
        printer.start(RunStart("p", "native"))
        assert seen == [""], make


def test_run_does_not_import_heavy_modules(built) -> None:
    code = (
        "import sys; from ebpm.cli.app import run; "
        f"run(['run', {str(built('opensnoop'))!r}, '--', '-h']); "
        "print(sorted(m for m in ('requests', 'rich', 'cryptography', 'wasmtime') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ})
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr


def test_wasm_package_runs_its_own_userspace(built) -> None:
    """A package with a wasm layer: `ebpm run` hands over to its guest (docs/wasm.md)."""
    require_bpf()
    pkg = built("wasm-execsnoop")
    proc = subprocess.Popen([*EBPM, "run", "--duration", "3", str(pkg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    with Trigger(lambda: subprocess.run(["/bin/echo", "wasm"], capture_output=True), 0.1):
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("EXEC") and "comm=echo" in line:
                break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert any("comm=echo" in line for line in lines), lines


def test_without_capabilities_it_says_to_use_sudo(built) -> None:
    setpriv = "/usr/bin/setpriv"
    assert Path(setpriv).exists(), "util-linux's setpriv is part of Debian's base system"
    proc = subprocess.run([setpriv, "--inh-caps=-all", "--bounding-set=-all", *EBPM, "run",
                           "--duration", "1", str(built("opensnoop"))],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: loading BPF programs needs CAP_BPF and CAP_PERFMON (or root)",
        "hint: run it with sudo: sudo ebpm run ... (the store of the invoking user is used)",
    ]


def test_mounts_tracefs_when_missing(built) -> None:
    """In a private mount namespace without tracefs, ebpm mounts it and the tracepoints attach."""
    require_bpf()
    script = (
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; "
        "grep -c ' tracefs ' /proc/self/mounts; "
        f"{EBPM[0]} run --duration 0.3 {built('opensnoop')} -- --pid 1 || exit 9; "
        "grep ' tracefs ' /proc/self/mounts"
    )
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "0"  # tracefs was gone in the namespace
    assert lines[-1].startswith("tracefs /sys/kernel/tracing tracefs")


def test_histogram_maps_as_json_and_as_text(built) -> None:
    require_bpf()
    with Trigger(lambda: subprocess.run(["/bin/true"]), 0.02):
        as_json = _ebpm("run", "--json", "--duration", "0.5", str(built("runqlat")))
        as_text = _ebpm("run", "--unit", "usecs", "--duration", "0.5", str(built("runqlat")))
    assert as_json.returncode == 0 and as_text.returncode == 0, as_json.stderr + as_text.stderr
    doc = [d for d in map(json.loads, as_json.stdout.splitlines()) if "map" in d][-1]
    assert (doc["map"], doc["kind"], doc["final"]) == ("hists", "hist", True)
    assert sum(doc["rows"][0]["value"]["slots"]) > 0
    assert "     usecs               : count    distribution" in as_text.stdout.splitlines()


def test_registry_settings_are_read_for_a_registry_reference_only(built) -> None:
    """A malformed EBPM_MIRRORS does not stop `ebpm run DIR` (a local run reads no registry
    settings, nor imports what they need); it still stops `ebpm run NAME`."""
    env = dict(os.environ, EBPM_MIRRORS="garbage", EBPM_OFFLINE="1")
    proc = subprocess.run([*EBPM, "run", str(built("opensnoop")), "--", "-h"], env=env,
                          capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert proc.returncode == 0 and "--failed" in proc.stdout, proc.stderr
    proc = subprocess.run([*EBPM, "run", "tools/nothere:1.0.0"], env=env, capture_output=True,
                          text=True, timeout=20, cwd=ROOT)
    assert proc.returncode != 0 and "EBPM_MIRRORS: 'garbage'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_events_reach_a_pipe_while_the_run_waits(built, as_json: bool) -> None:
    """Into a pipe, stdout is block-buffered (one write for a batch of events, not one per
    line: twice the events through `| wc -l` at a flood) and the printer writes each batch out
    once the run is about to wait: three events, and nothing more happening, are read while
    the run still runs."""
    require_bpf()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # (as users run)
    proc = subprocess.Popen([*EBPM, "run", *(["--json"] if as_json else []), "--duration", "30",
                             str(built("ringread")), "--", "--pid", str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in proc.stdout or ()],
                     daemon=True).start()
    try:
        if as_json:
            assert '"ebpm":"start"' in out.get(timeout=20)
        else:
            assert "attached ringread" in proc.stderr.readline()
        for _ in range(3):
            os.getppid()
        if not as_json:
            assert out.get(timeout=20).split()[:2] == ["SEQ", "PID"]  # (with the first)
        lines = [out.get(timeout=20) for _ in range(3)]
        assert proc.poll() is None  # still running: written out, not at exit
        if as_json:
            assert [json.loads(line)["seq"] for line in lines] == [0, 1, 2]
        else:
            assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
