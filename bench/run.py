"""`ebpm run` benchmarks: time to the first event against the C opensnoop; ring buffer throughput.

1. Process start to first decoded event: `ebpm run examples/opensnoop` against Debian's
   libbpf-tools `/usr/sbin/opensnoop` (C), same filter (this process, failed opens), same
   trigger (this process opens a missing file every 2 ms), alternated, medians and ratio.
2. Sustained ring-buffer events per second: a C producer calls getppid() as fast as it can (or
   paced), a tracepoint program sends one 48-byte record per call; the consumer decodes every
   record into a dict with the compiled decoder. Peer: the same ring buffer drained with a
   callback that does nothing. Records the kernel could not reserve are counted in a map (the
   loss counter) and shown.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EBPM = str(Path(sys.executable).with_name("ebpm"))
C_OPENSNOOP = "/usr/sbin/opensnoop"
ROUNDS = 7

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} control SEC(".maps");  /* [0]: the producer's pid, [1]: records lost */

__u32 seq;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 zero = 0, one = 1;
	__u64 *target = bpf_map_lookup_elem(&control, &zero);
	__u64 *lost;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;

	if (!target || *target != pid)
		return 0;
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


def _first_event_seconds(cmd: list[str], path: str) -> float:
    """Seconds from spawning `cmd` until a line naming `path` appears on its stdout."""
    stop = threading.Event()

    def trigger() -> None:
        while not stop.wait(0.002):
            try:
                open(path).close()
            except FileNotFoundError:
                pass

    thread = threading.Thread(target=trigger, daemon=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            bufsize=1)
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
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _startup(pkg_dir: Path) -> list[str]:
    pid = str(os.getpid())
    path = f"/tmp/ebpm-bench-{uuid.uuid4().hex}"
    cmds = {
        "ebpm run examples/opensnoop": [EBPM, "run", str(pkg_dir), "--", "--pid", pid,
                                        "--failed"],
        "C opensnoop (libbpf-tools)": [C_OPENSNOOP, "-p", pid, "-x"],
    }
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for cmd in cmds.values():  # warm the page cache once
        _first_event_seconds(cmd, path)
    for _ in range(ROUNDS):
        for name, cmd in cmds.items():
            times[name].append(_first_event_seconds(cmd, path))
    med = {name: statistics.median(t) for name, t in times.items()}
    ebpm, c = med["ebpm run examples/opensnoop"], med["C opensnoop (libbpf-tools)"]
    lines = [f"time to first event, median of {ROUNDS} alternated runs:"]
    for name, value in med.items():
        spread = f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}"
        lines.append(f"  {name:<30} {value * 1000:7.1f} ms  (range {spread} ms)")
    lines.append(f"  ratio ebpm / C: {ebpm / c:.2f}x")
    return lines


def _compile(tmp: Path, vmlinux_h: Path) -> tuple[bytes, Path]:
    (tmp / "ring.bpf.c").write_text(RING_C)
    shutil.copyfile(vmlinux_h, tmp / "vmlinux.h")
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86",
                    f"-I{tmp}", "-c", str(tmp / "ring.bpf.c"), "-o", str(tmp / "ring.bpf.o")],
                   check=True)
    (tmp / "producer.c").write_text(PRODUCER_C)
    subprocess.run(["clang", "-O2", "-o", str(tmp / "producer"), str(tmp / "producer.c")],
                   check=True)
    return (tmp / "ring.bpf.o").read_bytes(), tmp / "producer"


def _throughput(obj: bytes, producer: Path, *, decode: bool, seconds: float,
                rate: float) -> tuple[float, int, int]:
    """(records consumed per second, consumed, lost) for one producer run."""
    from ebpm.loader import libbpf
    from ebpm.loader.btf import Btf
    from ebpm.loader.decode import compile_decoder

    btf = Btf.parse(obj)
    decoder = compile_decoder(btf, btf.find("event").id).decode
    count = 0

    def on_record(data: bytes) -> None:
        nonlocal count
        count += 1
        if decode:
            decoder(data)

    with libbpf.BpfObject.open_memory(obj, name="ringbench") as bpf:
        bpf.load()
        bpf.program("on_getppid").attach()
        control = bpf.map("control")
        proc = subprocess.Popen([str(producer), str(seconds), str(rate)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        control.update((0).to_bytes(4, "little"), proc.pid.to_bytes(8, "little"))
        with libbpf.RingBuffer(bpf.map("events").fd, on_record) as ring:
            assert proc.stdin is not None
            start = time.perf_counter()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            while proc.poll() is None:
                ring.poll(50)
            while ring.consume():
                pass
            elapsed = time.perf_counter() - start
        proc.communicate()
        lost = int.from_bytes(control.lookup((1).to_bytes(4, "little")) or b"", "little")
    return count / elapsed, count, lost


def _ring(vmlinux_h: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ebpm-bench-") as tmp_name:
        obj, producer = _compile(Path(tmp_name), vmlinux_h)
        raw_rate, raw_n, raw_lost = _throughput(obj, producer, decode=False, seconds=1.0, rate=0)
        dec_rate, dec_n, dec_lost = _throughput(obj, producer, decode=True, seconds=1.0, rate=0)
        paced = round(dec_rate * 0.6, -3)
        ok_rate, ok_n, ok_lost = _throughput(obj, producer, decode=True, seconds=1.0, rate=paced)
    return [
        "ring buffer, 48-byte records, producer at full speed for 1 s:",
        f"  drain only (peer)        {raw_rate:>10,.0f} records/s  ({raw_n:,} read, "
        f"{raw_lost:,} lost)",
        f"  decode into dicts        {dec_rate:>10,.0f} events/s   ({dec_n:,} decoded, "
        f"{dec_lost:,} lost)",
        f"  ratio decode / drain: {dec_rate / raw_rate:.2f}x",
        f"sustained: producer paced at {paced:,.0f}/s -> {ok_rate:,.0f} events/s decoded, "
        f"{ok_n:,} events, loss counter {ok_lost:,}",
    ]


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
            lines += _startup(pkg_dir)
        else:
            lines.append(f"time to first event: skipped, {C_OPENSNOOP} is not installed "
                         "(apt install libbpf-tools)")
        lines += _ring(vmlinux_h)
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
