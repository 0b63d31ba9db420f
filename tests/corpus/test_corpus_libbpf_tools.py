"""bcc's libbpf-tools, unmodified: build each as a user would (sources + a short ebpm.toml),
run it with `ebpm run --json`, trigger its event and check the decoded fields.

Only what the BTF cannot say is declared in ebpm.toml ([display]: histogram unit, result maps,
field hints); everything else is ebpm's generic decoding. Tools needing kprobes or fentry are
not in the list (this kernel has neither); the list names the hooks each one uses.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.corpus.conftest import CORPUS, LOADED_NAMES, Run, ebpm_cli, ebpm_run, package_dir

pytestmark = pytest.mark.kernel
TOOLS = CORPUS / "libbpf-tools"
SHARED = ["bits.bpf.h", "maps.bpf.h", "core_fixes.bpf.h", "compat.bpf.h", "path_helpers.bpf.h",
          "path_helpers.h"]
MARK = uuid.uuid4().hex[:12]
PID = os.getpid()
TMP = Path("/var/tmp")  # on the root block device (block I/O tools need a real disk)


def toml(name: str, extra: str = "") -> str:
    head = f'[package]\nname = "{name}"\nversion = "0.1.0"\nlicense = "GPL-2.0"\n'
    return head + ("\n" + extra if extra else "")


def own_comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


# -- triggers -------------------------------------------------------------------------------------


def exec_echo() -> None:
    subprocess.run(["/bin/echo", MARK, "two words"], stdout=subprocess.DEVNULL, check=True)


def exit_three() -> None:
    subprocess.run(["/bin/sh", "-c", f"exit 3 # {MARK}"], check=False)


MISSING = f"/tmp/ebpm-corpus-missing-{MARK}"


def open_missing() -> None:
    try:
        open(MISSING).close()
    except FileNotFoundError:
        pass


def stat_missing() -> None:
    try:
        os.stat(MISSING)
    except FileNotFoundError:
        pass


def mount_missing() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount(f"ebpm-{MARK}".encode(), MISSING.encode(), b"tmpfs", 0, None)


def resolve_localhost() -> None:
    socket.getaddrinfo("localhost", 80)


LIBC = "/lib/x86_64-linux-gnu/libc.so.6" if Path("/lib/x86_64-linux-gnu/libc.so.6").exists() else (
    "/lib/aarch64-linux-gnu/libc.so.6")


def fsync_file() -> None:
    path = TMP / f"ebpm-corpus-sync-{MARK}"
    with open(path, "wb") as f:
        f.write(b"x")
        f.flush()
        os.fsync(f.fileno())
    path.unlink()


def getppid_burst() -> None:
    for _ in range(50):
        os.getppid()


def switch_threads() -> None:
    done = threading.Event()
    threading.Thread(target=done.set).start()
    done.wait()
    os.sched_yield()


def busy() -> None:
    x = 0
    for i in range(20000):
        x += i
    switch_threads()


class Listener:
    """A loopback TCP server accepting and closing connections, for the tcp tools."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(16)
            conn.close()

    def connect(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as c:
            c.sendall(b"ping")

    def close(self) -> None:
        self.sock.close()


def direct_write() -> None:
    path = TMP / f"ebpm-corpus-bio-{MARK}"
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=64k", "count=8", "oflag=direct",
                    "status=none"], check=True)
    path.unlink()


# -- cases ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    tool: str
    hooks: str  # what it attaches to, for the reader
    trigger: Callable[[], object]
    check: Callable[[Run], None]
    args: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # before TARGET: --attach for hooks the section cannot name
    declare: str = ""
    max_events: int | None = None
    duration: float = 15


def _event(run: Run, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for e in run.events:
        if pred(e):
            return e
    raise AssertionError(f"no matching event among {run.events[:5]} (stderr {run.err!r})")


def check_execsnoop(run: Run) -> None:
    e = _event(run, lambda e: MARK in e["args"])
    assert e["args"] == ["/bin/echo", MARK, "two words"]  # NUL-separated: a list of strings
    assert e["comm"] == "echo" and e["retval"] == 0 and e["ppid"] == PID
    assert e["args_count"] == 3


def check_exitsnoop(run: Run) -> None:
    e = _event(run, lambda e: e["ppid"] == PID and e["comm"] == "sh")
    assert e["exit_code"] == 3 and e["sig"] == 0  # the tool stores exit_code >> 8


def check_opensnoop(run: Run) -> None:
    e = _event(run, lambda e: e["fname"]["pathes"] == MISSING)
    assert e["ret"] == -2 and e["pid"] == PID


def check_statsnoop(run: Run) -> None:
    e = _event(run, lambda e: e["pathname"] == MISSING)
    assert e["ret"] == -2 and e["pid"] == PID
    assert isinstance(e["type"], str) and e["type"].startswith("SYS_")  # enum sys_type by name


def check_mountsnoop(run: Run) -> None:
    e = _event(run, lambda e: e.get("mount", {}).get("dest") == MISSING)
    assert e["op"] == "MOUNT" and e["ret"] == -2  # enum op by name
    assert e["mount"]["src"] == f"ebpm-{MARK}" and e["mount"]["fs"] == "tmpfs"
    # the union shows the member the enum selects, not every view of the same bytes
    assert not {"umount", "fsopen", "fsconfig", "fsmount", "move_mount"} & set(e)


def check_gethostlatency(run: Run) -> None:
    e = _event(run, lambda e: e["host"] == "localhost")
    assert e["pid"] == PID and e["time"] > 0  # the uretprobe turned the start into a delta


def check_syncsnoop(run: Run) -> None:
    comm = own_comm()
    _event(run, lambda e: e["comm"] == comm)


def check_syscount(run: Run) -> None:
    data = run.final("data")
    assert [m["map"] for m in run.maps if m["final"]] == ["data"]  # not the `start` scratch map
    counts = {row["key"]: row["value"]["count"] for row in data["rows"]}
    assert counts.get(110, 0) >= 50  # getppid on x86_64


def _hist(run: Run, name: str) -> list[dict[str, Any]]:
    snap = run.final(name)
    assert snap["kind"] == "hist" and snap["rows"], snap
    assert all(sum(row["value"]["slots"]) > 0 for row in snap["rows"])
    return list(snap["rows"])


def check_runqlat(run: Run) -> None:
    _hist(run, "hists")
    assert [m["map"] for m in run.maps if m["final"]] == ["hists"]
    assert run.record("summary")["unit"] == "usecs"


def check_runqslower(run: Run) -> None:
    e = run.events[0]
    assert isinstance(e["task"], str) and isinstance(e["delta_us"], int) and e["pid"] >= 0


def check_cpudist(run: Run) -> None:
    _hist(run, "hists")


def check_tcp(field_port: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        e = _event(run, lambda e: e["daddr"] == "127.0.0.1" and e["family"] == 2)
        assert e["saddr"] == "127.0.0.1"
        assert isinstance(e[field_port], int)
    return check


def check_biolatency(run: Run) -> None:
    _hist(run, "hists")


def check_bitesize(run: Run) -> None:
    rows = _hist(run, "hists")
    assert any(row["key"]["comm"] == "dd" for row in rows)


def check_biopattern(run: Run) -> None:
    rows = run.final("counters")["rows"]
    assert rows and any(row["value"]["bytes"] > 0 for row in rows)


_listener: Listener | None = None


def tcp_connect() -> None:
    global _listener
    if _listener is None:
        _listener = Listener()
    _listener.connect()


CASES = [
    Case("execsnoop", "tracepoint syscalls/sys_{enter,exit}_execve, perf buffer", exec_echo,
         # `args` beside `args_count`: a list of strings without a declaration
         check_execsnoop),
    Case("exitsnoop", "tracepoint sched/sched_process_exit, ring buffer", exit_three,
         check_exitsnoop),
    Case("opensnoop", "tracepoint syscalls/sys_{enter,exit}_open*, compat ring buffer",
         open_missing, check_opensnoop, args=("--tgid", str(PID))),
    Case("statsnoop", "tracepoint syscalls/sys_{enter,exit}_*stat*", stat_missing,
         check_statsnoop, args=("--target-pid", str(PID))),
    Case("mountsnoop", "tracepoint syscalls/sys_{enter,exit}_mount and friends", mount_missing,
         check_mountsnoop, args=("--target-pid", str(PID))),
    Case("gethostlatency", "uprobe and uretprobe on libc's getaddrinfo, perf buffer",
         resolve_localhost, check_gethostlatency, args=("--target-pid", str(PID)),
         options=("--attach", f"handle_entry=uprobe:{LIBC}:getaddrinfo",
                  "--attach", f"handle_return=uretprobe:{LIBC}:getaddrinfo"),
         # Debian's libbpf 1.1 headers predate BPF_UPROBE (libbpf 1.2): its kprobe twins
         declare='[build]\ncflags = ["-DBPF_UPROBE=BPF_KPROBE", '
                 '"-DBPF_URETPROBE=BPF_KRETPROBE"]\n'),
    # every registry on the machine fsyncs too: room for their events before ours
    Case("syncsnoop", "tracepoint syscalls/sys_enter_fsync", fsync_file, check_syncsnoop,
         max_events=1000, duration=3),
    Case("syscount", "tracepoint raw_syscalls/sys_{enter,exit}, hash map", getppid_burst,
         check_syscount, args=("--pid", str(PID)), duration=1.5),
    Case("runqlat", "tp_btf (or raw_tp) sched_wakeup/sched_switch, log2 histogram",
         # undeclared: its `targ_ms` flag says the unit is usecs unless set
         switch_threads, check_runqlat, duration=1.5),
    Case("runqslower", "tp_btf (or raw_tp) sched_wakeup/sched_switch, perf buffer",
         switch_threads, check_runqslower, args=("--min-us", "0"), max_events=5),
    Case("cpudist", "tp_btf (or raw_tp) sched_switch, log2 histogram", busy, check_cpudist,
         declare='[display]\nunit = "usecs"\n', duration=1.5),
    Case("tcpstates", "tracepoint sock/inet_sock_set_state, __int128 addresses", tcp_connect,
         check_tcp("dport")),
    Case("tcplife", "tracepoint sock/inet_sock_set_state, __int128 addresses", tcp_connect,
         check_tcp("dport")),
    Case("biolatency", "tp_btf (or raw_tp) block_rq_*, log2 histogram", direct_write,
         check_biolatency, declare='[display]\nunit = "usecs"\n', duration=2),
    Case("bitesize", "tp_btf block_rq_issue, histogram per comm", direct_write,
         check_bitesize, declare='[display]\nunit = "kbytes"\n', duration=2),
    Case("biopattern", "tracepoint block/block_rq_complete, hash map", direct_write,
         check_biopattern, duration=2),
]


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("libbpf-tools")


def build_tool(case: Case, root: Path, vmlinux: Path) -> Path:
    files = [TOOLS / f"{case.tool}.bpf.c", TOOLS / f"{case.tool}.h"] + [TOOLS / h for h in SHARED]
    pkg = package_dir(root / case.tool, files, toml(case.tool, case.declare))
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux))
    import json

    config = json.loads((pkg / ".ebpm" / "config.json").read_text())
    LOADED_NAMES.update(p["name"][:15] for p in config["programs"])
    return pkg


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.tool)
def test_libbpf_tool(case: Case, tools_dir: Path, vmlinux_h: Path, kernel: None) -> None:
    pkg = build_tool(case, tools_dir, vmlinux_h)
    run = ebpm_run(pkg, case.args, options=case.options, trigger=case.trigger,
                   duration=case.duration,
                   max_events=case.max_events or (None if case.duration < 5 else 10),
                   period=0.05)
    assert run.code == 0, run.err
    case.check(run)
    summary = run.record("summary")
    assert summary["events"] == len(run.events) and summary["lost"] == 0


def test_colliding_flags_get_their_full_names(tools_dir: Path, vmlinux_h: Path) -> None:
    """biolatency's `filter_dev` and `targ_dev` both derive `--dev`: both stay usable."""
    case = next(c for c in CASES if c.tool == "biolatency")
    pkg = build_tool(case, tools_dir, vmlinux_h)
    out = ebpm_cli("run", str(pkg), "--", "-h").stdout
    assert "--filter-dev" in out and "--targ-dev" in out
    obj = pkg / ".ebpm" / "biolatency.bpf.o"
    assert "--targ-dev" in ebpm_cli("run", str(obj), "--", "-h").stdout


def test_push_of_a_bare_object_packs_its_btf_sidecar(tools_dir: Path, vmlinux_h: Path,
                                                     registry) -> None:
    """`ebpm push x.bpf.o` publishes what `ebpm run x.bpf.o` decodes with: the NAME.btf beside
    it becomes the BTF layer, and the event type it holds is in the config."""
    import json

    case = next(c for c in CASES if c.tool == "opensnoop")
    pkg = build_tool(case, tools_dir, vmlinux_h)
    obj = pkg / ".ebpm" / "opensnoop.bpf.o"
    assert (pkg / ".ebpm" / "opensnoop.btf").exists()  # compat.bpf.h: the struct is not in .BTF
    ref = f"{registry.host}/corpus/opensnoop-bare:0.1.0"
    ebpm_cli("push", str(obj), ref)
    doc = json.loads(ebpm_cli("inspect", ref, "--json").stdout)
    types = [layer["mediaType"] for layer in doc["manifest"]["layers"]]
    assert types == ["application/vnd.ebpm.bpf.object.v1+elf", "application/vnd.ebpm.btf.v1"]
    assert [(e["map"], e["type"]) for e in doc["config"]["events"]] == [("events", "event")]
