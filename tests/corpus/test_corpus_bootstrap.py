"""libbpf-bootstrap's C examples, unmodified, built as a user would (`ebpm build` with a
three-line ebpm.toml), run with `ebpm run --json`. The ones needing kprobes, fentry, lsm, USDT
or their own userspace binary (uprobe, usdt, profile, sockfilter) cannot run on this kernel or
without that userspace; tc needs an interface of its own (run in a fresh network namespace).
minimal and tc report through bpf_printk: their trace lines are the events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.corpus.conftest import CORPUS, LOADED_NAMES, ebpm_cli, ebpm_run, package_dir

pytestmark = pytest.mark.kernel
SRC = CORPUS / "libbpf-bootstrap"


def build(name: str, root: Path, vmlinux: Path, header: str = "") -> Path:
    files = [SRC / f"{name}.bpf.c"] + ([SRC / header] if header else [])
    toml = f'[package]\nname = "{name.replace("_", "-")}"\nversion = "0.1.0"\n'
    if "_" in name:
        toml += f'[build]\nsource = "{name}.bpf.c"\n'
    pkg = package_dir(root / name, files, toml)
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux))
    config = json.loads((pkg / ".ebpm" / "config.json").read_text())
    LOADED_NAMES.update(p["name"][:15] for p in config["programs"])
    return pkg


def exec_true() -> None:
    subprocess.run(["/bin/true"], check=True)


@pytest.mark.parametrize("name", ["bootstrap", "bootstrap_legacy"])
def test_bootstrap_events(name: str, tmp_path: Path, vmlinux_h: Path, kernel: None) -> None:
    pkg = build(name, tmp_path, vmlinux_h, header="bootstrap.h")
    run = ebpm_run(pkg, duration=10, max_events=60, trigger=exec_true)
    assert run.code == 0, run.err
    execs = [e for e in run.events if e["comm"] == "true" and not e["exit_event"]]
    exits = [e for e in run.events if e["comm"] == "true" and e["exit_event"]]
    assert execs and execs[0]["filename"].endswith("/true")
    # a `true` exec'd before the attach exits with duration 0 (bootstrap has no start time for
    # it): the duration is asserted on the exits of processes whose exec was seen
    seen = {e["pid"] for e in execs}
    timed = [e for e in exits if e["pid"] in seen]
    assert timed and timed[0]["exit_code"] == 0 and timed[0]["duration_ns"] > 0
    assert run.record("start")["attached"] == ["handle_exec", "handle_exit"]


def test_perf_event_programs_are_refused_clearly(tmp_path: Path, vmlinux_h: Path,
                                                 kernel: None) -> None:
    """profile's perf_event program needs a perf event fd its own userspace opens: a clear
    "not supported" instead of EOPNOTSUPP and a hint to give an --attach target none fits."""
    pkg = build("profile", tmp_path, vmlinux_h, header="profile.h")
    proc = ebpm_cli("run", str(pkg), "--duration", "1", check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        "error: attach profile (perf_event): perf_event programs are not supported (yet): "
        "ebpm opens no perf event to attach them to"), proc.stderr
    assert "--attach" not in proc.stderr


def own_map(pid: int, suffix: str) -> int:
    """The id of the map named `*SUFFIX` that process `pid` holds (its fdinfo names map ids)."""
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = info.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("map_id:"):
                map_id = int(line.split()[1])
                shown = json.loads(subprocess.run(
                    ["bpftool", "-j", "map", "show", "id", str(map_id)], capture_output=True,
                    text=True, check=True).stdout)
                if shown.get("name", "").endswith(suffix):
                    return map_id
    raise AssertionError(f"process {pid} holds no map named *{suffix}")


def set_value(map_id: int, value: bytes) -> None:
    subprocess.run(["bpftool", "map", "update", "id", str(map_id), "key", "hex", "00", "00",
                    "00", "00", "value", "hex", *(f"{b:02x}" for b in value)], check=True)


def minimal_value(name: str, pkg: Path) -> tuple[str, bytes]:
    """What minimal's own userspace writes before it waits: `my_pid` (minimal_legacy: in
    `my_pid_map`; minimal_ns: with the pid namespace's dev and ino), at its symbols' offsets."""
    import struct

    from ebpm.loader.elf import ElfFile

    pid = os.getpid()
    if name == "minimal_legacy":
        return "my_pid_map", struct.pack("<i", pid)
    (obj,) = (pkg / ".ebpm").glob("*.bpf.o")
    elf = ElfFile(obj.read_bytes())
    bss = elf.section(".bss")
    assert bss is not None
    ns = os.stat("/proc/self/ns/pid")
    values = {"my_pid": struct.pack("<i", pid), "dev": struct.pack("<Q", ns.st_dev),
              "ino": struct.pack("<Q", ns.st_ino)}
    image = bytearray(bss.size)
    for sym in elf.symbols():  # (clang leaves BTF datasec offsets at 0; libbpf fixes them)
        if sym.section == bss.index and sym.name in values:
            image[sym.value:sym.value + sym.size] = values[sym.name]
    return ".bss", bytes(image)


def ours(jsonl: str) -> list[dict[str, object]]:
    """The events of this process among `ebpm run --json` lines."""
    return [e for e in map(json.loads, jsonl.splitlines()) if e.get("pid") == os.getpid()]


@pytest.mark.parametrize("name", ["minimal", "minimal_legacy", "minimal_ns"])
def test_minimal_examples_print_their_trace_lines(name: str, tmp_path: Path, vmlinux_h: Path,
                                                  kernel: None) -> None:
    """bpf_printk only: the start record says the lines come from a tracefs instance of
    ebpm's own; once `my_pid` is set (as minimal's userspace does, here with bpftool) a
    write by this process prints "BPF triggered from PID <this pid>." as an event."""
    from tests.corpus.conftest import EBPM

    pkg = build(name, tmp_path, vmlinux_h)
    # to a file: before `my_pid` is set, minimal_ns matches every write (its namespace lookup
    # fails with dev = ino = 0, so ns.pid == my_pid == 0), ebpm's own output included
    log = tmp_path / "out.jsonl"
    with log.open("w") as out_file:
        proc = subprocess.Popen([EBPM, "run", "--json", "--duration", "20", str(pkg)],
                                stdout=out_file, stderr=subprocess.PIPE, text=True)
    try:
        while not log.read_text().partition("\n")[1] and proc.poll() is None:
            time.sleep(0.02)
        start = json.loads(log.read_text().partition("\n")[0])
        assert start["ebpm"] == "start" and start["attached"] == ["handle_tp"], start
        (events,) = start["events"]
        instance = events.split("tracefs instance ")[1].rstrip(")")
        assert events.startswith("bpf_printk") and os.path.isdir(
            f"/sys/kernel/tracing/instances/{instance}")
        suffix, value = minimal_value(name, pkg)
        set_value(own_map(proc.pid, suffix), value)
        while proc.poll() is None:
            os.write(2, b"")  # sys_enter_write from this process
            if ours(log.read_text().rpartition("\n")[0]):
                proc.send_signal(signal.SIGINT)  # as Ctrl-C: the summary, then exit 0
                break
            time.sleep(0.05)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()  # a clean stop removes the trace instance
            proc.communicate()
    assert proc.returncode == 0, err
    out = log.read_text()
    mine = ours(out)
    assert mine, out  # (other programs' bpf_printk lines may come too, as in bpftool's view)
    assert {e["bpf_printk"] for e in mine} == {f"BPF triggered from PID {os.getpid()}."}
    assert not os.path.exists(f"/sys/kernel/tracing/instances/{instance}")  # cleaned up


def test_tc_example_in_its_own_namespace(tmp_path: Path, vmlinux_h: Path, kernel: None) -> None:
    """tc prints a line per IP packet on its interface (bpf_printk): a UDP datagram to a
    closed port on lo is two packets (the datagram, the ICMP reply). Lines are read until its
    own comes: any other program's bpf_printk lines reach the trace instance too (as in
    bpftool's view; a test beside this one printing a line per execve once filled the ten
    lines this test read before the first packet's), then the run is stopped with Ctrl-C."""
    pkg = build("tc", tmp_path, vmlinux_h)
    from tests.corpus.conftest import EBPM

    send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.sendto(bytes(12), ('127.0.0.1', 9))")
    proc = subprocess.Popen(
        ["unshare", "--net", "sh", "-c",
         f"ip link set lo up && {EBPM} run --json --duration 20 "
         f"--attach tc_ingress=tc:lo {pkg} & "
         f"while kill -0 $! 2>/dev/null; do {sys.executable} -c \"{send}\"; sleep 0.1; done; "
         "wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    docs = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                docs.append(json.loads(line))
                if docs[-1].get("bpf_printk") == "Got IP packet: tot_len: 40, ttl: 64":
                    break
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)  # (the shell, its sender loop and the run)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 128 + signal.SIGINT, -signal.SIGINT), err
    docs += [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    start = [d for d in docs if d.get("ebpm") == "start"][0]
    assert start["attached"] == ["tc_ingress"]
    lines = [d["bpf_printk"] for d in docs if "bpf_printk" in d]
    assert "Got IP packet: tot_len: 40, ttl: 64" in lines, docs
    assert [d["stopped_by"] for d in docs if d.get("ebpm") == "summary"] == ["signal"], docs


def test_printk_is_found_in_the_code_and_its_lines_parsed(tmp_path: Path,
                                                         vmlinux_h: Path) -> None:
    from ebpm.loader.tracelog import parse_line, uses_printk
    from ebpm.transfer.formats import eunomia_object

    pkg = build("minimal", tmp_path, vmlinux_h)
    assert uses_printk((pkg / ".ebpm" / "minimal.bpf.o").read_bytes())
    bootstrap = CORPUS / "eunomia-bpf" / "ecli-tests" / "bootstrap.json"
    assert not uses_printk(eunomia_object(json.loads(bootstrap.read_text()), where="x"))
    line = ("   minimal-app-4242    [001] d..31  7011.123456: bpf_trace_printk: "
            "BPF triggered from PID 4242.")
    assert parse_line(line) == {"ts": 7011.123456, "cpu": 1, "pid": 4242,
                                "comm": "minimal-app", "bpf_printk":
                                "BPF triggered from PID 4242."}
    assert parse_line("# tracer: nop") is None


def test_trace_lines_ebpm_itself_caused_are_left_out() -> None:
    """Printing a line is a write: lines from ebpm's own threads would feed a program that
    printks on every write (simple.bpf.c, minimal_ns before my_pid is set) forever."""
    import threading

    from ebpm.loader.tracelog import TraceLog

    r, w = os.pipe()
    os.set_blocking(r, False)
    log = TraceLog("/nonexistent/instance", r)
    other = next(pid for pid in range(2, 1 << 22) if not os.path.exists(f"/proc/{pid}"))
    line = ("  {comm}-{pid} [000] d..31  100.000001: bpf_trace_printk: "
            "BPF triggered from PID {pid}.\n")
    own = [os.getpid(), threading.get_native_id()]
    os.write(w, "".join(line.format(comm="ebpm", pid=p) for p in own).encode())
    os.write(w, line.format(comm="cat", pid=other).encode() + b"  cat-1 [000] d..31  100.0")
    events = log.read()
    assert [e["pid"] for e in events] == [other]  # the cut last line waits for its end
    os.write(w, b"00002: bpf_trace_printk: rest\n")
    assert [e["bpf_printk"] for e in log.read()] == ["rest"]
    os.close(w)
    os.close(r)
