"""`ebpm run` benchmarks: time to the first event against the C opensnoop; ring buffer throughput.

1. Process start to first decoded event: `ebpm run examples/opensnoop` against Debian's
   libbpf-tools `/usr/sbin/opensnoop` (C), same filter (this process, failed opens), same
   trigger (this process opens a missing file every 1 ms), alternated, medians and ratio.
   ebpm's timed runs load with the CO-RE cache (docs/running.md) its untimed first run made,
   as every run of an object after its first in a boot does; "first in a boot" runs with the
   cache emptied before each run (bpftool then makes it in the background after the attach).
   (Until 2026-12-01 the trigger opened every 2 ms: each side's first event then waited up to
   2 ms for the next open after it was ready; the trigger starts with the process, so that
   wait is about the same in every round of a side, not averaged away: the C tool's median
   was 13.1 ms at 2 ms and 12.4 ms at 1 ms, ebpm's 31.5 and 31.4 ms (25 paired rounds each,
   load ~2), ratio 2.41x and 2.53x. Denser is not free: each open costs the trigger thread
   ~40 us of CPU (2.4% of a core at 1 ms, 3.9% at 0.5 ms), taken from a side that keeps
   both cores busy, as ebpm's load thread and imports do.)
2. Sustained ring-buffer events per second: a C producer calls getppid() at a paced rate, a
   tracepoint program sends one 48-byte record per call; the consumer decodes every record
   into a dict. Peer: a C libbpf consumer of the same object and producer that reads every
   field. Records the kernel could not reserve are counted in a map (the loss counter) and
   shown. Then the same records through a perf event array (the way most libbpf-tools send
   theirs): the C consumer with perf_buffer__poll against ebpm's two readers; its loss is what
   the kernel reports (PERF_RECORD_LOST), counted by each reader.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Generator
from pathlib import Path

from bench.common import EBPM, ROOT, ebpm_env

C_OPENSNOOP = "/usr/sbin/opensnoop"
ROUNDS = 7
STARTUP_ROUNDS = 11  # the first-event rounds (each side a fresh process per round)
RING_ROUNDS = 3  # the ring and perf buffer rounds at each rate (1 s each side)
TRIGGER_S = 0.001  # seconds between the trigger's opens (see the docstring)

RING_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct event {
	__u64 ts;
	__u32 pid;
	__u32 seq;
	char comm[16];
	__u64 a;
	__s64 b;
};
struct event _event_btf = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} control SEC(".maps");  /* [0]: the producer's pid, [1]: records lost, [2]: 1 = perf buffer */

__u32 seq;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 zero = 0, one = 1, two = 2;
	__u64 *target = bpf_map_lookup_elem(&control, &zero);
	__u64 *perf = bpf_map_lookup_elem(&control, &two);
	__u64 *lost;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e, sample;

	if (!target || *target != pid)
		return 0;
	if (perf && *perf) {  /* the same record through the perf buffer (its loss: the reader's) */
		sample.ts = bpf_ktime_get_ns();
		sample.pid = pid;
		sample.seq = __sync_fetch_and_add(&seq, 1);
		bpf_get_current_comm(sample.comm, sizeof(sample.comm));
		sample.a = 42;
		sample.b = -42;
		bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &sample, sizeof(sample));
		return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		lost = bpf_map_lookup_elem(&control, &one);
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return 0;
	}
	e->ts = bpf_ktime_get_ns();
	e->pid = pid;
	e->seq = __sync_fetch_and_add(&seq, 1);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->a = 42;
	e->b = -42;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

PRODUCER_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = atof(argv[1]), rate = atof(argv[2]);
	char go[8];
	long n = 0;
	double start;

	if (!fgets(go, sizeof(go), stdin))  /* wait until the consumer is ready */
		return 1;
	start = now();
	for (;;) {
		double t = now() - start;
		if (t >= seconds)
			break;
		if (rate > 0 && n >= rate * t) {
			usleep(50);
			continue;
		}
		for (int i = 0; i < 64; i++)
			syscall(SYS_getppid);
		n += 64;
	}
	printf("%ld\n", n);
	return 0;
}
"""


def _open_missing(path: str, stop: threading.Event) -> None:
    """The trigger: open the missing `path` every TRIGGER_S until `stop` (a failed open, the
    event opensnoop --failed reports)."""
    while not stop.wait(TRIGGER_S):
        try:
            open(path).close()
        except FileNotFoundError:
            pass


def _first_event_seconds(cmd: list[str], path: str, env: dict[str, str] | None = None,
                         since: float | None = None) -> float:
    """Seconds from spawning `cmd` until a line naming `path` (the expected event, not an error
    message) appears on its stdout."""
    stop = threading.Event()
    thread = threading.Thread(target=_open_missing, args=(path, stop), daemon=True)
    start = time.perf_counter() if since is None else since
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            bufsize=1, env=env)
    thread.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if path in line:
                return time.perf_counter() - start
        raise RuntimeError(f"{cmd[0]}: exited without an event")
    finally:
        stop.set()
        thread.join()
        proc.send_signal(signal.SIGINT)
        try:  # read on: a child blocked writing to a full pipe may not see the signal
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


# The floor of any Python tool here: CPython's start, ctypes and libbpf's own work (open, CO-RE
# against vmlinux BTF, verifier, attach) on the same object, and a perf buffer printing the raw
# record that names the expected path (no decoding; filtered in the callback). No ebpm import.
# In three parts: the bindings, the load, the rest (attach, perf buffer, poll).
# Every floor runs its start-up without the cycle collector, as ebpm does (`ebpm.cli.startup`:
# off from the first line, frozen and on again once libbpf's load runs): `_GC_OFF` first, and
# on again where the load has started (or, loaded in line, where the rest begins).
_GC_OFF = "import gc\ngc.disable()\n"
_FLOOR_BINDINGS = r"""
import ctypes, sys
from ctypes import CFUNCTYPE, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p
lib = ctypes.CDLL("libbpf.so.1")
for name, res, args in (("bpf_object__open_file", c_void_p, [c_char_p, c_void_p]),
                        ("bpf_object__load", c_int, [c_void_p]),
                        ("bpf_object__next_program", c_void_p, [c_void_p, c_void_p]),
                        ("bpf_program__attach", c_void_p, [c_void_p]),
                        ("bpf_object__find_map_fd_by_name", c_int, [c_void_p, c_char_p]),
                        ("perf_buffer__poll", c_int, [c_void_p, c_int])):
    getattr(lib, name).restype, getattr(lib, name).argtypes = res, args
SAMPLE = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_uint32)
LOST = CFUNCTYPE(None, c_void_p, c_int, c_uint64)
lib.perf_buffer__new.restype = c_void_p
lib.perf_buffer__new.argtypes = [c_int, c_size_t, SAMPLE, LOST, c_void_p, c_void_p]
"""
_FLOOR_LOAD = r"""
obj = lib.bpf_object__open_file(sys.argv[1].encode(), None)
if not obj or lib.bpf_object__load(obj):
    sys.exit("load failed")
"""
_FLOOR_REST = r"""
gc.enable()
prog = None
while True:
    prog = lib.bpf_object__next_program(obj, prog)
    if not prog:
        break
    lib.bpf_program__attach(prog)
out = sys.stdout
want = sys.argv[2].encode()
def sample(ctx, cpu, data, size):
    record = ctypes.string_at(data, size)
    if want in record:  # (ebpm filters in the kernel, by its flags; this is cheaper still)
        out.write(record.decode("latin-1").replace("\0", " ") + "\n")
        out.flush()
keep = (SAMPLE(sample), LOST(lambda ctx, cpu, n: None))
pb = lib.perf_buffer__new(lib.bpf_object__find_map_fd_by_name(obj, b"events"), 8, *keep, None,
                          None)
while True:
    lib.perf_buffer__poll(pb, 100)
"""
FLOOR_PY = _GC_OFF + _FLOOR_BINDINGS + _FLOOR_LOAD + _FLOOR_REST

# What ebpm's start needed of the standard library besides ctypes (until the eighth round; see
# floor (6) for now): Ctrl-C held from the first
# line (signal, threading), the package's JSON config read and its name checked with a regular
# expression (json, re; re and signal bring enum).
_FLOOR_SIGNALS = r"""
import os, signal, threading
signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
"""
_FLOOR_CONFIG = r"""
import json, re, sys
with open(sys.argv[3], "rb") as f:
    config = json.loads(f.read())
if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", config["name"]):
    sys.exit("bad name")
"""
# The floor of a Python tool that does that before libbpf's load; then the same as FLOOR_PY.
# The gap between the two floors is CPython's own import cost of those modules.
FLOOR_STDLIB_PY = (_GC_OFF + _FLOOR_SIGNALS + _FLOOR_CONFIG + _FLOOR_BINDINGS + _FLOOR_LOAD
                   + _FLOOR_REST)

# The kernel's work first (the design of ebpm's run path): the load starts in a thread as soon
# as the bindings are there (`_thread`: threading is imported meanwhile), and the same stdlib
# work is done while it runs (the GIL released in bpf_object__load); then the rest.
_FLOOR_LOAD_STARTED = r"""
import _thread
started, loaded = _thread.allocate_lock(), _thread.allocate_lock()
started.acquire()
loaded.acquire()
objs = []
def load():
    started.release()
    handle = lib.bpf_object__open_file(sys.argv[1].encode(), None)
    objs.append(handle if handle and not lib.bpf_object__load(handle) else None)
    loaded.release()
_thread.start_new_thread(load, ())
started.acquire()  # (as threading's start(): the thread runs, and takes the GIL, first)
gc.enable()
"""
_FLOOR_LOAD_TAKEN = r"""
loaded.acquire()
obj = objs[0]
if not obj:
    sys.exit("load failed")
"""
FLOOR_FIRST_PY = (_GC_OFF + _FLOOR_BINDINGS + _FLOOR_LOAD_STARTED + _FLOOR_SIGNALS + _FLOOR_CONFIG
                  + _FLOOR_LOAD_TAKEN + _FLOOR_REST)
# ... and the same with the config read before the load, as a tool must whose flags' .rodata
# offsets and types come from its JSON config (ebpm's): json and re on the critical path
FLOOR_CONFIG_FIRST_PY = (_GC_OFF + _FLOOR_CONFIG + _FLOOR_BINDINGS + _FLOOR_LOAD_STARTED
                         + _FLOOR_SIGNALS + _FLOOR_LOAD_TAKEN + _FLOOR_REST)
# ... and with Ctrl-C held from the first line by a handler (ebpm's design until the eighth
# round: a Ctrl-C during the start-up's imports is remembered, not raised inside one), so
# signal's import is before the load too
_FLOOR_HOLD = r"""
import os, signal
signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
"""
FLOOR_HELD_PY = (_GC_OFF + _FLOOR_HOLD + _FLOOR_CONFIG + _FLOOR_BINDINGS + _FLOOR_LOAD_STARTED
                 + "import threading\n" + _FLOOR_LOAD_TAKEN + _FLOOR_REST)
# ebpm's design since the eighth round (docs/architecture.md): the load-time part of the config
# read from the text form `ebpm build` writes (.ebpm/loadtime.txt, str methods only: no json,
# no re) and Ctrl-C held in the kernel from the first line (SIGINT blocked through ctypes'
# libc, which the bindings import anyway: no signal, no enum), so nothing but ctypes and the
# bindings before libbpf's load; then, while it runs, the handler installed and SIGINT
# unblocked (signal, enum), config.json read and its name checked (json, re), threading.
_FLOOR_KERNEL_HOLD = r"""
import ctypes
_mask = (ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong))))()
_mask[0] = 1 << 1  # SIGINT
ctypes.CDLL(None).pthread_sigmask(0, ctypes.byref(_mask), None)  # SIG_BLOCK
"""
_FLOOR_TEXT_CONFIG = r"""
import sys
with open(sys.argv[4], "rb") as f:
    lines = f.read().decode("ascii").split("\n")
if lines[0] != "ebpm-loadtime 2" or not lines[2].startswith("name "):
    sys.exit("bad load-time config")
name = lines[2][len("name "):]
if not (name.isascii() and name.islower() and name.replace(".", "").replace("_", "")
        .replace("-", "").isalnum()):
    sys.exit("bad name")
flags = {parts[2]: (parts[1], parts[3], int(parts[4]), int(parts[5]))
         for parts in (line.split(" ") for line in lines[3:]) if parts[0] == "arg"}
"""
_FLOOR_HANDED_OVER = r"""
import os, signal
signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
"""
FLOOR_TEXT_PY = (_GC_OFF + _FLOOR_KERNEL_HOLD + _FLOOR_TEXT_CONFIG + _FLOOR_BINDINGS
                 + _FLOOR_LOAD_STARTED + _FLOOR_HANDED_OVER + _FLOOR_CONFIG
                 + "import threading\n" + _FLOOR_LOAD_TAKEN + _FLOOR_REST)
# ... and the same with the CO-RE cache's file (ebpm.loader.corecache: the kernel types the
# object's relocations use, bpftool's min_core_btf, argv[5]) given to libbpf, so that the load
# does not read the whole kernel BTF: ebpm's design since the ninth round
_FLOOR_CACHED_OPEN = r"""
class _Opts(ctypes.Structure):  # the head of struct bpf_object_open_opts (libbpf reads `sz`)
    _fields_ = [("sz", c_size_t), ("object_name", c_char_p), ("relaxed_maps", ctypes.c_bool),
                ("pin_root_path", c_char_p), ("attach_prog_fd", c_uint32), ("kconfig", c_char_p),
                ("btf_custom_path", c_char_p)]
_opts = _Opts(sz=ctypes.sizeof(_Opts), btf_custom_path=sys.argv[5].encode())
_open_file = lib.bpf_object__open_file
lib.bpf_object__open_file = lambda path, _: _open_file(path, ctypes.byref(_opts))
"""
FLOOR_CACHED_PY = (_GC_OFF + _FLOOR_KERNEL_HOLD + _FLOOR_TEXT_CONFIG + _FLOOR_BINDINGS
                   + _FLOOR_CACHED_OPEN + _FLOOR_LOAD_STARTED + _FLOOR_HANDED_OVER
                   + _FLOOR_CONFIG + "import threading\n" + _FLOOR_LOAD_TAKEN + _FLOOR_REST)
# ebpm's design since the tenth round: what the run needs of the config read from the text
# form alone (config.json checked by its size and CRC-32, zlib: no json, no re), SIGINT and
# SIGTERM held in the kernel until the first events are out (no signal, no enum before them),
# no threading: CPython, ctypes and the bindings, the text, the load with the cache's file,
# the rest; the handlers' imports after the first record, which is what is timed.
_FLOOR_BOTH_HELD = _FLOOR_KERNEL_HOLD.replace("1 << 1  # SIGINT",
                                              "1 << 1 | 1 << 14  # SIGINT, SIGTERM")
_FLOOR_CHECKED = r"""
import zlib
with open(sys.argv[3], "rb") as f:
    _size, _crc = lines[1].split(" ")[1:]
    _data = f.read()
    if len(_data) != int(_size) or zlib.crc32(_data) != int(_crc, 16):
        sys.exit("config.json is another")
"""
# (the signals unblocked once a poll has handed out records: Python's own SIGINT handler then
# ends it when the bench stops it, as ebpm's handlers end a run)
_FLOOR_REST_UNBLOCKING = _FLOOR_REST.replace(
    "while True:\n    lib.perf_buffer__poll(pb, 100)\n",
    "while True:\n    if lib.perf_buffer__poll(pb, 100) > 0:\n"
    "        ctypes.CDLL(None).pthread_sigmask(1, ctypes.byref(_mask), None)  # SIG_UNBLOCK\n")
assert _FLOOR_REST_UNBLOCKING != _FLOOR_REST
FLOOR_DESIGN_PY = (_GC_OFF + _FLOOR_BOTH_HELD + _FLOOR_TEXT_CONFIG + _FLOOR_CHECKED
                   + _FLOOR_BINDINGS + _FLOOR_CACHED_OPEN + _FLOOR_LOAD_STARTED
                   + _FLOOR_LOAD_TAKEN + _FLOOR_REST_UNBLOCKING)


def _startup(pkg_dir: Path, c_out: list[float] | None = None) -> list[str]:
    """Both sides print through a pipe, line-buffered (the C tool under `stdbuf -oL`, or it would
    wait for 4 KiB of output); the same program (opensnoop's tracepoints), the same filter (this
    process, failed opens) and the same trigger."""
    pid = str(os.getpid())
    path = f"/tmp/ebpm-bench-{uuid.uuid4().hex}"
    cache = Path(tempfile.mkdtemp(prefix="ebpm-bench-core-"))  # the CO-RE cache, warmed below
    empty = Path(tempfile.mkdtemp(prefix="ebpm-bench-core-"))  # emptied before each run
    env = ebpm_env(EBPM_CORE_CACHE=str(cache))
    ebpm_cmd = [EBPM, "run", str(pkg_dir), "--", "--pid", pid, "--failed"]
    try:
        _first_event_seconds(ebpm_cmd, path, env)  # (the object's first run: the cache made)
        (cached,) = cache.rglob("*.btf")
        return _startup_rounds(pkg_dir, c_out, pid, path, env, ebpm_cmd, cached, empty)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(empty, ignore_errors=True)


def _startup_rounds(pkg_dir: Path, c_out: list[float] | None, pid: str, path: str,
                    env: dict[str, str], ebpm_cmd: list[str], cached: Path,
                    empty: Path) -> list[str]:
    first_in_boot = "ebpm run, first in a boot"
    envs = {first_in_boot: dict(env, EBPM_CORE_CACHE=str(empty))}
    setups = {first_in_boot: lambda: shutil.rmtree(empty, ignore_errors=True)}
    cmds = {
        "ebpm run examples/opensnoop": ebpm_cmd,
        first_in_boot: ebpm_cmd,
        "C opensnoop (libbpf-tools)": ["stdbuf", "-oL", C_OPENSNOOP, "-p", pid, "-x"],
        "python -c pass": [sys.executable, "-c", f"print({path!r}, flush=True)"],
        "floor: python+ctypes+libbpf": [sys.executable, "-c", FLOOR_PY,
                                        str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"), path],
        "floor + json/re/signal/threading": [
            sys.executable, "-c", FLOOR_STDLIB_PY, str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"),
            path, str(pkg_dir / ".ebpm" / "config.json")],
        "floor, load first, stdlib meanwhile": [
            sys.executable, "-c", FLOOR_FIRST_PY, str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"),
            path, str(pkg_dir / ".ebpm" / "config.json")],
        "the same, config read first": [
            sys.executable, "-c", FLOOR_CONFIG_FIRST_PY,
            str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"), path,
            str(pkg_dir / ".ebpm" / "config.json")],
        "the same, Ctrl-C held from the start": [
            sys.executable, "-c", FLOOR_HELD_PY, str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"),
            path, str(pkg_dir / ".ebpm" / "config.json")],
        "ebpm's design: text config, held in kernel": [
            sys.executable, "-c", FLOOR_TEXT_PY, str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"),
            path, str(pkg_dir / ".ebpm" / "config.json"),
            str(pkg_dir / ".ebpm" / "loadtime.txt")],
        "the same, CO-RE cache's types": [
            sys.executable, "-c", FLOOR_CACHED_PY, str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"),
            path, str(pkg_dir / ".ebpm" / "config.json"),
            str(pkg_dir / ".ebpm" / "loadtime.txt"), str(cached)],
        "ebpm's design: no json/re/signal first": [
            sys.executable, "-c", FLOOR_DESIGN_PY, str(pkg_dir / ".ebpm" / "opensnoop.bpf.o"),
            path, str(pkg_dir / ".ebpm" / "config.json"),
            str(pkg_dir / ".ebpm" / "loadtime.txt"), str(cached)],
    }
    times: dict[str, list[float]] = {name: [] for name in cmds}
    def once(name: str) -> float:
        setups.get(name, lambda: None)()
        return _first_event_seconds(cmds[name], path, envs.get(name, env))

    for name in cmds:  # warm the page cache once, and check each side prints the event
        once(name)
    for r in range(STARTUP_ROUNDS):
        names = list(cmds)
        for name in names[r % 2:] + names[:r % 2]:
            times[name].append(once(name))
    med = {name: statistics.median(t) for name, t in times.items()}
    ebpm, c = med["ebpm run examples/opensnoop"], med["C opensnoop (libbpf-tools)"]
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libbpf-tools"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    lines = [f"time to first event (peer: libbpf-tools {version} opensnoop under stdbuf -oL), "
             f"median of {STARTUP_ROUNDS} alternated runs, trigger every "
             f"{TRIGGER_S * 1000:g} ms:"]
    for name, value in med.items():
        spread = f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}"
        lines.append(f"  {name:<36} {value * 1000:7.1f} ms  (range {spread} ms)")
    if c_out is not None:
        c_out.extend(times["C opensnoop (libbpf-tools)"])
    ratio = ebpm / c
    lines.append(f"  standalone ebpm run first event vs C: ratio {ratio:.2f}x; target <= 2.0x: "
                 f"{'MET' if ratio <= 2.0 else 'NOT MET'}")
    floor = med["floor: python+ctypes+libbpf"]
    lines.append(f"  the floor (CPython start + ctypes + libbpf open/CO-RE/verifier/attach of the "
                 f"same object, raw records, no ebpm import): {floor / c:.2f}x C; ebpm's own "
                 f"imports and set-up above it: {(ebpm - floor) * 1000:.1f} ms "
                 "(docs/architecture.md: the lean entry)")
    stdlib = med["floor + json/re/signal/threading"]
    left = _room(c, stdlib)
    lines.append(f"  the floor with what ebpm's start needs of the stdlib done before the load "
                 f"(json config, re, signal, threading; they bring enum): {stdlib / c:.2f}x C "
                 f"(+{(stdlib - floor) * 1000:.1f} ms); ebpm above that: "
                 f"{(ebpm - stdlib) * 1000:.1f} ms; {left}")
    first = med["floor, load first, stdlib meanwhile"]
    config_first = med["the same, config read first"]
    lines.append(f"  the floor of the kernel's work first (the load started in a thread, the "
                 f"same stdlib imported while it runs): {first / c:.2f}x C; with the JSON "
                 f"config read before the load, as the flags' .rodata needs without a text form "
                 f"(json, re and enum on the critical path): {config_first / c:.2f}x C")
    held = med["the same, Ctrl-C held from the start"]
    lines.append(f"  the same with Ctrl-C held by a handler from the first line (ebpm's design "
                 f"until the eighth round: signal imported before the load too): "
                 f"{held / c:.2f}x C")
    text = med["ebpm's design: text config, held in kernel"]
    left = _room(c, text)
    lines.append(f"  the eighth round's design floor (the load-time part of the config read as "
                 f"text, Ctrl-C held in the kernel until the load runs: only ctypes before it; "
                 f"json, re, signal while it runs): {text / c:.2f}x C, "
                 f"{(held - text) * 1000:.1f} ms below the last; ebpm above it: "
                 f"{(ebpm - text) * 1000:.1f} ms; {left}")
    cached_floor = med["the same, CO-RE cache's types"]
    design = med["ebpm's design: no json/re/signal first"]
    lines.append(f"  with the CO-RE cache (docs/running.md; the floors above read the whole kernel "
                 f"BTF): the same given the cache's file {cached_floor / c:.2f}x C "
                 f"({(text - cached_floor) * 1000:.1f} ms below it; the ninth round's design)")
    lines.append(f"  ebpm's design floor (the tenth round, docs/architecture.md: the cache's file; "
                 f"the run's part of the config from the text form alone, config.json checked "
                 f"by its CRC-32; SIGINT and SIGTERM held in the kernel until the first events "
                 f"are out: no json, re, signal or threading before them): {design / c:.2f}x C "
                 f"({(cached_floor - design) * 1000:.1f} ms below the last); ebpm above it: "
                 f"{(ebpm - design) * 1000:.1f} ms; {_room(c, design)}; ebpm's first run of an "
                 f"object in a boot (the cache empty, made by bpftool after the attach): "
                 f"{med[first_in_boot] / c:.2f}x C")
    lines.append(_import_split(env))
    return lines


def _room(c: float, floor: float) -> str:
    """What 2.0x the C tool's `c` leaves above `floor` (seconds both)."""
    room = (2 * c - floor) * 1000
    return (f"2.0x leaves {room:.1f} ms above it" if room >= 0 else
            f"2.0x is {-room:.1f} ms below this floor")


# What `ebpm run DIR` imports, timed alone in a fresh process (no work done): what the console
# script itself imports (Debian's pip 23 writes `import re` into it; current pip, pipx and uv
# write none), then ebpm's modules up to libbpf's load (on the path to the first event), then
# the ones imported while libbpf loads in its thread. Then as many empty modules (a package and
# its submodules) as ebpm imports before the load: what CPython's import machinery alone costs
# for that many (finding, reading, a module object), the floor of ebpm's module count.
IMPORTS_PY = r"""
import gc, sys, time
gc.disable()  # (as ebpm's start-up: ebpm.cli.startup)
t0 = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
t1 = time.perf_counter()
import ebpm.cli, ebpm.cli.startup, ebpm.interrupts, ebpm.cli.lean, ebpm.cli.run, ebpm.cli.exits
import ebpm.errors, ebpm.run.dispatch, ebpm.run.native, ebpm.loader.args, ebpm.loader.loading
import ebpm.loadtime, ctypes, zlib
t2 = time.perf_counter()
ours = sum(1 for name in sys.modules if name == "ebpm" or name.startswith("ebpm."))
import ebpm.cli.printers, ebpm.loader.session, ebpm.loader.environment, ebpm.loader.display
import ebpm.loader.libbpf.perfbuf  # (its reader; json and signal: none before the first event)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, ours)
"""
EMPTY_PY = r"""
import gc, sys, time
gc.disable()
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
import emptypkg
for i in range(1, int(sys.argv[2])):
    __import__(f"emptypkg.m{i}")
print(time.perf_counter() - t0)
"""


def _wrapper_imports() -> list[str]:
    """The modules the installed `ebpm` console script imports before ebpm's own."""
    with open(EBPM) as f:
        lines = f.read().splitlines()
    return [line.split()[1] for line in lines
            if line.startswith("import ") and line.split()[1] != "sys"]


def _import_split(env: dict[str, str]) -> str:
    """One line splitting ebpm's part: its imports (fresh processes, medians), what as many
    empty modules cost, and the rest."""
    wrapper_imports = _wrapper_imports()
    runs = [subprocess.run([sys.executable, "-c", IMPORTS_PY, *wrapper_imports], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
            for _ in range(ROUNDS)]
    wrapper, before, after = (statistics.median(float(r[i]) for r in runs) * 1000
                              for i in range(3))
    count = int(runs[0][3])
    with tempfile.TemporaryDirectory(prefix="ebpm-bench-empty-") as work:
        os.mkdir(os.path.join(work, "emptypkg"))
        for i in range(count):
            name = "__init__" if i == 0 else f"m{i}"
            with open(os.path.join(work, "emptypkg", f"{name}.py"), "w"):
                pass
        subprocess.run([sys.executable, "-c", EMPTY_PY, work, str(count)], env=env, check=True,
                       capture_output=True)  # (their .pyc written once, as ebpm's are)
        empty = statistics.median(float(subprocess.run(
            [sys.executable, "-c", EMPTY_PY, work, str(count)], env=env, capture_output=True,
            text=True, check=True).stdout) for _ in range(ROUNDS)) * 1000
    wrapped = (f"the console script's own imports ({', '.join(wrapper_imports)}) {wrapper:.1f} ms"
               if wrapper_imports else "the console script imports nothing of its own")
    return (f"  of which imports (alone, fresh process): {wrapped}; ebpm's {count} modules "
            f"before libbpf's load starts {before:.1f} ms (with the standard library they "
            f"bring: ctypes), of which CPython's import "
            f"machinery alone ({count} empty modules) {empty:.1f} ms; while it loads "
            f"{after:.1f} ms; the rest is reading the package, flags into .rodata, opening the "
            "object, attaching")


CONSUMER_C = r"""
// SPDX-License-Identifier: GPL-2.0
/* The decoding peer: the same object, the same producer; libbpf's ring_buffer__poll with a
 * callback that reads every field of the record (what a C tool prints). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

struct event { unsigned long long ts; unsigned int pid, seq; char comm[16];
               unsigned long long a; long long b; };
static volatile sig_atomic_t stop;
static long n;
static unsigned long long sink;

static void on_stop(int sig) { (void)sig; stop = 1; }

static int on_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	sink += e->ts + e->pid + e->seq + (unsigned char)e->comm[0] + e->a + (unsigned long long)e->b;
	n++;
	return 0;
}

static unsigned long long perf_lost;

static void on_sample(void *ctx, int cpu, void *data, unsigned int size)
{
	(void)cpu;
	on_event(ctx, data, size);
}

static void on_lost(void *ctx, int cpu, unsigned long long count)
{
	(void)ctx;
	(void)cpu;
	perf_lost += count;
}

static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	unsigned int zero = 0, one = 1, two = 2;
	unsigned long long target = strtoull(argv[2], NULL, 10), lost = 0, perf = 1;
	int use_perf = argc > 3 && !strcmp(argv[3], "perf");
	struct ring_buffer *rb = NULL;
	struct perf_buffer *pb = NULL;
	double start;

	if (!obj || bpf_object__load(obj))
		return 1;
	if (!bpf_program__attach(bpf_object__find_program_by_name(obj, "on_getppid")))
		return 1;
	bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, "control"), &zero, &target, 0);
	if (use_perf) {  /* 64 pages a CPU, as ebpm's */
		bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, "control"), &two, &perf, 0);
		pb = perf_buffer__new(bpf_object__find_map_fd_by_name(obj, "perf_events"),
				64, on_sample, on_lost, NULL, NULL);
	} else {
		rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"),
				on_event, NULL, NULL);
	}
	signal(SIGUSR1, on_stop);
	printf("READY\n");
	fflush(stdout);
	start = cpu();
	while (!stop) {
		if (pb)
			perf_buffer__poll(pb, 50);
		else
			ring_buffer__poll(rb, 50);
	}
	if (pb)
		perf_buffer__consume(pb);
	else
		ring_buffer__consume(rb);
	bpf_map_lookup_elem(bpf_object__find_map_fd_by_name(obj, "control"), &one, &lost);
	printf("%ld %.6f %llu %llu\n", n, cpu() - start, lost + perf_lost, sink & 1);
	perf_buffer__free(pb);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
"""


# The floor of `ebpm run --agent` from the shell: the least a Python client of the agent does,
# no ebpm import. The same requests on the agent's Unix socket as ebpm's client (ebpm.serve.client:
# one connection each, `Connection: close`): POST /v1/programs, then its events followed as
# NDJSON, each printed by field name; on SIGINT or SIGTERM, DELETE (so nothing is left in the
# agent). What it must import for that: json (the API), socket, signal (the stop), as ebpm does.
AGENT_FLOOR_PY = _GC_OFF + r"""
import json, signal, socket, sys
where, ref, pid = sys.argv[1:4]
def request(method, path, body=None):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(where)
    data = b"" if body is None else json.dumps(body).encode()
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                 .encode() + data)
    answer = sock.makefile("rb")
    sock.close()  # (the file keeps the connection)
    status = int(answer.readline().split()[1])
    headers = {}
    while (line := answer.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if status >= 400:
        sys.exit(f"agent: HTTP {status}")
    return answer, headers
def body(answer, headers):  # its bytes as they come
    if headers.get(b"transfer-encoding") != b"chunked":
        yield answer.read(int(headers[b"content-length"])) if b"content-length" in headers \
            else answer.read()
        return
    while size := int(answer.readline().split(b";")[0], 16):
        yield answer.read(size)
        answer.readline()
def call(method, path, body_=None):
    raw = b"".join(body(*request(method, path, body_)))
    return json.loads(raw) if raw else None
class Stop(BaseException):
    pass
def stop(signum, frame):
    raise Stop
doc = call("POST", "/v1/programs", {"ref": ref, "args": ["--pid", pid, "--failed"],
                                    "allow_unsigned": True})
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
out = sys.stdout
try:
    rest = b""
    for chunk in body(*request("GET", f"/v1/programs/{doc['id']}/events?follow=true&tail=all"
                                      "&format=ndjson")):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            record = json.loads(line)
            if "_ebpm" not in record:
                out.write(" ".join(f"{k}={v}" for k, v in record.items()) + "\n")
                out.flush()
except Stop:
    pass
finally:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    call("DELETE", f"/v1/programs/{doc['id']}")
"""


def _agent(pkg_dir: Path, c_times: list[float]) -> list[str]:
    """First event with the agent (ebpm serve) already running: the package (pushed to a
    loopback registry, unsigned, allowed) is handed to the agent over its Unix socket, and the
    clock stops at the first matching event streamed back. Two clients: this process (no
    process start: the agent's own latency) and the CLI: `ebpm run --agent` (one process, attached)
and `ebpm run --detach` + `ebpm logs -f`; and the floor of `ebpm run --agent`, the least a
Python client does (`AGENT_FLOOR_PY`), in the same rounds.
    The agent keeps a stopped program loaded (its warm cache, `ebpm serve --warm`), so every
    start after the first only attaches it; the first (cold) start is shown too."""
    sys.path.insert(0, str(ROOT))
    from ebpm.serve.client import AgentClient
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-agent-"))
    reg = start_registry(root=work / "registry")
    pin = Path("/sys/fs/bpf") / f"ebpm-bench-{uuid.uuid4().hex[:8]}"
    env = ebpm_env(EBPM_HOME=str(work / "home"), EBPM_CONFIG=str(work / "config"))
    sock = work / "agent.sock"
    agent = None
    try:
        version = next(line.split('"')[1] for line in (pkg_dir / "ebpm.toml").read_text()
                       .splitlines() if line.startswith("version"))
        ref = f"{reg.host}/bench/opensnoop:{version}"
        subprocess.run([EBPM, "push", str(pkg_dir), ref], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        agent = subprocess.Popen([EBPM, "serve", "--socket", str(sock), "--state-dir",
                                  str(work / "state"), "--pin-dir", str(pin)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline or agent.poll() is not None:
                raise RuntimeError("the agent did not start")
            time.sleep(0.05)
        pid = str(os.getpid())
        path = f"/tmp/ebpm-bench-{uuid.uuid4().hex}"
        client = AgentClient(str(sock))  # the one agent client (what ebpm ps/logs/stop use)
        warm_starts: list[bool] = []

        def in_process() -> float:
            stop = threading.Event()
            t = threading.Thread(target=_open_missing, args=(path, stop), daemon=True)
            start = time.perf_counter()
            doc = client.call("POST", "/v1/programs", {
                "ref": ref, "args": ["--pid", pid, "--failed"], "allow_unsigned": True})
            t.start()
            try:
                stream = client.stream(f"/v1/programs/{doc['id']}/events?follow=true")
                assert isinstance(stream, Generator)  # (closed below: its connection with it)
                for record in stream:
                    if record.get("fname") == path:
                        elapsed = time.perf_counter() - start
                        break
                else:
                    raise RuntimeError("agent: the event stream ended")
                stream.close()
            finally:
                stop.set()
                t.join()
                client.call("DELETE", f"/v1/programs/{doc['id']}")
            warm_starts.append(bool(doc.get("warm_start")))
            return elapsed

        cli_env = dict(env, EBPM_AGENT=str(sock))

        def cli() -> float:
            start = time.perf_counter()
            out = subprocess.run([EBPM, "run", "--detach", "--allow-unsigned", ref, "--",
                                  "--pid", pid, "--failed"], env=cli_env, check=True,
                                 capture_output=True, text=True).stdout.split()
            program = out[0]
            try:
                return _first_event_seconds([EBPM, "logs", "-f", program], path, cli_env,
                                            since=start)
            finally:
                subprocess.run([EBPM, "stop", program], env=cli_env, capture_output=True)

        def attached() -> float:  # one process: the agent runs it, this CLI prints its events
            return _first_event_seconds([EBPM, "run", "--agent", str(sock), "--allow-unsigned",
                                         ref, "--", "--pid", pid, "--failed"], path, env)

        def floor_client() -> float:  # the least a Python client of the agent does
            return _first_event_seconds([sys.executable, "-c", AGENT_FLOOR_PY, str(sock), ref,
                                         pid], path, env)

        def python_start() -> float:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            return time.perf_counter() - start

        cold = in_process()  # the first start pulls the package into the store and loads it
        cli()
        attached()
        floor_client()
        warm_starts.clear()
        a, b, d, f, py = [], [], [], [], []
        for _ in range(ROUNDS):
            a.append(in_process())
            d.append(attached())
            f.append(floor_client())
            b.append(cli())
            py.append(python_start())
        c = statistics.median(c_times)
        lines = ["with the agent running (ebpm serve; same package from a loopback registry; "
                 f"{sum(warm_starts)} of {len(warm_starts)} timed starts from its warm cache):",
                 f"  {'agent, first (cold) start, in process':<36} {cold * 1000:7.1f} ms  "
                 f"(pull from the store, load, attach; once)"]
        for name, values in (("agent, client in this process", a),
                             ("agent, ebpm run --agent (attached)", d),
                             ("agent, ebpm run --detach + logs -f", b),
                             ("agent, a Python client's floor", f),
                             ("CPython start alone (python -c pass)", py)):
            med = statistics.median(values)
            lines.append(f"  {name:<36} {med * 1000:7.1f} ms  (range {min(values) * 1000:.0f}-"
                         f"{max(values) * 1000:.0f} ms)  ratio vs C {med / c:.2f}x")
        best, cli_ratio = statistics.median(a) / c, statistics.median(d) / c
        least = (statistics.median(py) + statistics.median(a)) / c
        floor = statistics.median(f) / c
        above = (statistics.median(d) - statistics.median(f)) * 1000
        beyond = " (above 1.0x: no Python client meets it)" if floor > 1.0 else ""
        lines.append(f"  agent first event vs C: ratio {best:.2f}x; target <= 1.0x: "
                     f"{'MET' if best <= 1.0 else 'NOT MET'} (client in this process); "
                     f"from the shell (ebpm run --agent) {cli_ratio:.2f}x: "
                     f"{'MET' if cli_ratio <= 1.0 else 'NOT MET'}; its floor, a Python client "
                     f"(CPython's start; json, socket, signal; the same 3 requests; no ebpm "
                     f"import) {floor:.2f}x{beyond}, ebpm {above:.1f} ms above it; CPython's "
                     f"start + the agent's own time {least:.2f}x")
        return lines
    finally:
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _compile(tmp: Path, vmlinux_h: Path) -> tuple[bytes, Path, Path]:
    (tmp / "ring.bpf.c").write_text(RING_C)
    shutil.copyfile(vmlinux_h, tmp / "vmlinux.h")
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86",
                    f"-I{tmp}", "-c", str(tmp / "ring.bpf.c"), "-o", str(tmp / "ring.bpf.o")],
                   check=True)
    (tmp / "producer.c").write_text(PRODUCER_C)
    subprocess.run(["clang", "-O2", "-o", str(tmp / "producer"), str(tmp / "producer.c")],
                   check=True)
    (tmp / "consumer.c").write_text(CONSUMER_C)
    subprocess.run(["clang", "-O2", "-o", str(tmp / "consumer"), str(tmp / "consumer.c"),
                    "-lbpf"], check=True)
    return (tmp / "ring.bpf.o").read_bytes(), tmp / "producer", tmp / "consumer"


def _producer(producer: Path, seconds: float, rate: float) -> subprocess.Popen[str]:
    return subprocess.Popen([str(producer), str(seconds), str(rate)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _c_consumer(obj_path: Path, consumer: Path, producer: Path, *, seconds: float,
                rate: float, perf: bool = False) -> tuple[int, float, int, int]:
    """(records consumed, consumer CPU seconds, lost, produced) for the C peer; `perf`: the
    records come through the perf buffer (perf_buffer__poll) instead of the ring buffer."""
    prod = _producer(producer, seconds, rate)
    cons = subprocess.Popen([str(consumer), str(obj_path), str(prod.pid),
                             "perf" if perf else "ring"], stdout=subprocess.PIPE, text=True)
    assert cons.stdout is not None
    if cons.stdout.readline().strip() != "READY":
        raise RuntimeError("C consumer failed to start")
    _go(prod)
    produced = int(prod.communicate()[0].strip() or 0)
    time.sleep(0.1)
    cons.send_signal(signal.SIGUSR1)
    out = cons.communicate(timeout=30)[0].split()
    return int(out[0]), float(out[1]), int(out[2]), produced


def _py_consumer(obj: bytes, producer: Path, *, mode: str, seconds: float,
                 rate: float) -> tuple[int, float, int, int]:
    """The same for ebpm in this process: `mode` "callback" is libbpf's ring_buffer__poll with
    one Python callback and one decode per record (the run path before issue 18); "batch"
    reads the ring through its mmap and decodes a whole batch at once (what `ebpm run` does
    now on x86-64, ebpm.loader.events). The same two through the perf buffer: "perf
    callback" (libbpf's perf_buffer__poll), "perf mapped" (ebpm.loader.libbpf.perfbuf)."""
    from ebpm.loader import libbpf
    from ebpm.loader.btf import Btf
    from ebpm.loader.decode import batch_decoder, compile_decoder

    btf = Btf.parse(obj)
    event = btf.find("event")
    assert event is not None, "the ring bench's object has no struct event"
    decoder = compile_decoder(btf, event.id)
    decode = decoder.decode
    count = 0
    sink: list[object] = []

    def on_record(data: bytes) -> None:
        nonlocal count
        count += 1
        sink.append(decode(data))
        if len(sink) > 4096:
            sink.clear()

    with libbpf.BpfObject.open_memory(obj, name="ringbench") as bpf:
        bpf.load()
        bpf.program("on_getppid").attach()
        control = bpf.map("control")
        prod = _producer(producer, seconds, rate)
        control.update((0).to_bytes(4, "little"), prod.pid.to_bytes(8, "little"))
        perf = mode.startswith("perf")
        control.update((2).to_bytes(4, "little"), int(perf).to_bytes(8, "little"))
        perf_lost = 0
        if mode in ("batch", "perf mapped"):
            from ebpm.loader.libbpf.perfbuf import MappedPerf
            from ebpm.loader.libbpf.ringbuf import MappedRing

            reader: MappedPerf | MappedRing = (MappedPerf(bpf.map("perf_events").fd) if perf
                                               else MappedRing(bpf.map("events").fd))
            batch = batch_decoder(btf, event.id, perf=perf)
            t0 = time.thread_time()
            _go(prod)
            # the producer is asked whether it exited only when the ring is empty (the C side
            # never asks: a wait syscall per batch is not the consumer's cost); once it has, one
            # more read takes what it produced last
            done = False
            while True:
                events = reader.read(batch, decode)
                count += len(events)
                if events:
                    continue
                if done:  # it exited, and the read after that found nothing
                    break
                done = prod.poll() is not None
                if not done:
                    reader.wait(50)
            cpu = time.thread_time() - t0
            perf_lost = reader.lost_total
            reader.close()
        else:  # libbpf's poll and a Python callback per record
            buffer: libbpf.PerfBuffer | libbpf.RingBuffer = (
                libbpf.PerfBuffer(bpf.map("perf_events").fd, lambda cpu, data: on_record(data))
                if perf else libbpf.RingBuffer(bpf.map("events").fd, on_record))
            with buffer:
                t0 = time.thread_time()
                _go(prod)
                while prod.poll() is None:
                    buffer.poll(50)
                while buffer.consume():
                    pass
                cpu = time.thread_time() - t0
                if isinstance(buffer, libbpf.PerfBuffer):
                    perf_lost = buffer.lost_total
        produced = int(prod.communicate()[0].strip() or 0)
        lost = int.from_bytes(control.lookup((1).to_bytes(4, "little")) or b"", "little")
    return count, cpu, lost + perf_lost, produced


def _decode_floor(obj: bytes, records: int = 600_000) -> tuple[float, float]:
    """(ebpm's batch decoder, CPython's floor) in CPU us per record, best of 5, on an in-memory
    copy of `records` ring records in slices of 4096: no ring, no wait. The floor is what any
    Python consumer that hands on one dict per record pays: `struct.iter_unpack` over the
    records, one dict of the six fields, comm cut at its NUL and decoded."""
    import struct

    from ebpm.loader.btf import Btf
    from ebpm.loader.decode import batch_decoder

    btf = Btf.parse(obj)
    event = btf.find("event")
    assert event is not None
    batch = batch_decoder(btf, event.id)
    layout = struct.Struct("<I4xQII16sQq")  # the ring's 8-byte header + RING_C's struct event
    assert layout.size == batch.stride, (layout.size, batch.stride)
    data = memoryview(layout.pack(batch.size, 123456789, 4242, 7, b"producer", 42, -42) * records)
    step = 4096 * layout.size

    def floor(buf: memoryview, want: int) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        append = out.append
        for v in layout.iter_unpack(buf):
            if v[0] != want:
                break
            append({"ts": v[1], "pid": v[2], "seq": v[3],
                    "comm": v[4].partition(b"\0")[0].decode("utf-8", "replace"), "a": v[5],
                    "b": v[6]})
        return out

    best = {}
    for name, decode in (("ebpm", batch.decode), ("floor", floor)):
        times = []
        for _ in range(5):
            t0 = time.thread_time()
            n = sum(len(decode(data[i:i + step], batch.size)) for i in range(0, len(data), step))
            times.append(time.thread_time() - t0)
            assert n == records, (name, n)
        best[name] = min(times) / records * 1e6
    return best["ebpm"], best["floor"]


def _ring(vmlinux_h: Path) -> list[str]:
    from ebpm.loader import libbpf as _  # noqa: F401  (loads libbpf before timing)

    lines = []
    libbpf_version = "libbpf " + (subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libbpf1"], capture_output=True,
        text=True).stdout.strip() or "unknown")
    try:
        from ebpm.loader.libbpf import ringbuf  # noqa: F401
        mapped = ringbuf.supported()
    except ImportError:
        mapped = False
    with tempfile.TemporaryDirectory(prefix="ebpm-bench-") as tmp_name:
        obj, producer, consumer = _compile(Path(tmp_name), vmlinux_h)
        obj_path = Path(tmp_name) / "ring.bpf.o"
        for perf in (False, True):
            if perf:
                modes = ["perf callback"] + (["perf mapped"] if mapped else [])
                lines.append("perf buffer, the same records through a perf event array (64 "
                             "pages a CPU), consumer CPU per event (peer: the same C consumer "
                             f"with perf_buffer__poll, {libbpf_version}; no target, the run path "
                             f"of most libbpf-tools; medians of {RING_ROUNDS} alternated rounds, "
                             "ranges):")
            else:
                modes = ["callback"] + (["batch"] if mapped else [])
                lines.append("ring buffer, 48-byte records, paced producer for 1 s, consumer "
                             "CPU per event (peer: C consumer of the same object and "
                             f"producer, reading every field, {libbpf_version}; medians of "
                             f"{RING_ROUNDS} alternated rounds, ranges):")
            for rate in (100_000, 300_000, 600_000):
                more, c_us = _rate(rate, modes, perf, obj, obj_path, producer, consumer)
                lines += more
            if not perf and mapped:  # (c_us: the C consumer's at 600,000/s)
                ebpm_us, floor_us = _decode_floor(obj)
                lines.append(
                    f"  decoding alone, 600,000 records in memory (no ring, no wait; best of "
                    f"5): ebpm's batch decoder {ebpm_us:.2f} us/record; CPython's floor for "
                    f"one dict per record (iter_unpack, the six fields, comm decoded) "
                    f"{floor_us:.2f} us/record, {floor_us / c_us:.2f}x the C consumer at "
                    f"600,000/s (1.5x is {1.5 * c_us:.2f} us)")
    return lines


def _rate(rate: int, modes: list[str], perf: bool, obj: bytes, obj_path: Path, producer: Path,
          consumer: Path) -> tuple[list[str], float]:
    """One rate's lines: the C consumer's CPU per event and loss, then each of ebpm's `modes`
    against it (RING_ROUNDS alternated rounds: medians, ranges); and the C consumer's CPU per
    event (us)."""
    results: dict[str, list[tuple[int, float, int, int]]] = {}
    for r in range(RING_ROUNDS):  # alternate sides, keep the median CPU per event
        sides = ["C"] + modes
        for side in sides[r % len(sides):] + sides[:r % len(sides)]:
            if side == "C":
                res = _c_consumer(obj_path, consumer, producer, seconds=1.0, rate=rate,
                                  perf=perf)
            else:
                res = _py_consumer(obj, producer, mode=side, seconds=1.0, rate=rate)
            results.setdefault(side, []).append(res)

    def per_event(side: str) -> tuple[float, str]:  # the median us/event, and its range
        us = [c / max(n, 1) * 1e6 for n, c, _, _ in results[side]]
        return statistics.median(us), f"(range {min(us):.2f}-{max(us):.2f})"

    c_us, c_range = per_event("C")
    c_lost = max(lost for _, _, lost, _ in results["C"])
    made = statistics.median(p for *_, p in results["C"])
    lines = [f"  {rate:,}/s asked ({made:,.0f} produced): C {c_us:.2f} us/event {c_range}, "
             f"{c_lost} lost"]
    for mode in modes:
        us, spread = per_event(mode)
        lost = max(lost for _, _, lost, _ in results[mode])
        met = us / c_us <= 1.5 and lost == 0
        if rate != 600_000 or perf:
            target = ""
        elif mode == "batch":  # what `ebpm run` reads with (ebpm.loader.events)
            target = f"; target <= 1.5x and 0 lost: {'MET' if met else 'NOT MET'}"
        else:
            target = " (libbpf's callback, the other way measured; not the run path)"
        lines.append(f"    ebpm {mode:<13} {us:.2f} us/event {spread}, {lost} lost, ratio "
                     f"{us / c_us:.2f}x{target}")
    return lines, c_us


def main() -> list[str]:
    from ebpm.build import build
    from ebpm.build.vmlinux import vmlinux_header

    with tempfile.TemporaryDirectory(prefix="ebpm-bench-") as home:
        os.environ.setdefault("EBPM_HOME", home)
        vmlinux_h = vmlinux_header()
        pkg_dir = Path(home) / "opensnoop"
        shutil.copytree(ROOT / "examples" / "opensnoop", pkg_dir,
                        ignore=shutil.ignore_patterns(".ebpm"))
        build(pkg_dir, vmlinux_h=vmlinux_h)
        lines = []
        if Path(C_OPENSNOOP).exists():
            c_times: list[float] = []
            lines += _startup(pkg_dir, c_times)
            try:
                lines += _agent(pkg_dir, c_times)
            except Exception as err:  # the agent is another room's: report, keep going
                lines.append(f"with the agent running: FAILED: {type(err).__name__}: {err}")
        else:
            lines.append(f"time to first event: skipped, {C_OPENSNOOP} is not installed "
                         "(apt install libbpf-tools)")
        lines += _ring(vmlinux_h)
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
