"""Wasm host benchmark: events/s delivered to a guest (none lost) vs the native path, and start-up.

One BPF object (a getppid tracepoint writing 64-byte ring-buffer records for one pid, filtered
through rodata) is consumed twice in the same run: by a wasm guest through the wasm_bpf host
(ring buffer -> copy -> fast unchecked call into the guest's callback), and natively through
ebpm.loader.libbpf.RingBuffer with a Python callback. A separate process makes the syscalls,
released once the consumer is attached; the clock stops when the consumer holds all records.
EBPM_BENCH_WASM_EVENTS sets the count (default 100000).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ebpm.loader.wasm.host import RunResult

BENCH_H = r"""
/* SPDX-License-Identifier: GPL-2.0 */
struct bench_event {
	__u64 seq;
	__u32 pid;
	__u32 pad;
	__u8 payload[48];
};
"""

BENCH_BPF_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bench.h"

const volatile __u32 targ_pid = 0;
__u64 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int bench_getppid(void *ctx)
{
	struct bench_event *e;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->seq = seq++;
	e->pid = targ_pid;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

BENCH_APP_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <stdlib.h>
#include <bpf/libbpf.h>
#include "bench.h"
#include "bench.skel.h"

static long n, want;
static unsigned long long next_seq;
static int ordered = 1;

static int on_event(void *ctx, void *data, size_t size)
{
	const struct bench_event *e = data;
	(void)ctx;
	if (size != sizeof(*e) || e->seq != next_seq)
		ordered = 0;
	next_seq = e->seq + 1;
	n++;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_bpf *skel = bench_bpf__open();
	if (!skel || argc < 3)
		return 1;
	skel->rodata->targ_pid = (__u32)atol(argv[1]);
	want = atol(argv[2]);
	if (bench_bpf__load(skel) || bench_bpf__attach(skel))
		return 1;
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	printf("READY\n");
	fflush(stdout);
	while (n < want && ring_buffer__poll(rb, 100) >= 0)
		;
	printf("DONE %ld ordered=%d\n", n, ordered);
	ring_buffer__free(rb);
	bench_bpf__destroy(skel);
	return 0;
}
"""

GENERATOR = (
    "import os, sys\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "f = os.getppid\n"
    "for _ in range({n}): f()\n"
)


def _build_native(work: Path, obj: Path) -> Path:
    """The same app.c compiled natively against libbpf (Debian's libbpf-dev): the C peer."""
    native = work / "native"
    native.mkdir(exist_ok=True)
    skel = subprocess.run(["bpftool", "gen", "skeleton", str(obj)], check=True,
                          capture_output=True).stdout
    (native / "bench.skel.h").write_bytes(skel)
    subprocess.run(["clang", "-O2", "-I", str(native), "-I", str(work), "-o",
                    str(native / "app"), str(work / "app.c"), "-lbpf"], check=True)
    return native / "app"


def _c_run(app: Path, n: int) -> tuple[float, int, bool]:
    """(seconds from release to the last event, events, in order) for the native C consumer."""
    gen = _Generator(n)
    proc = subprocess.Popen([str(app), str(gen.pid), str(n)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        raise RuntimeError("native C consumer failed to start")
    gen.release()
    done = proc.stdout.readline()
    end = time.perf_counter()
    proc.wait(timeout=60)
    gen.wait()
    parts = done.split()
    return end - gen.released, int(parts[1]) if len(parts) > 1 else 0, "ordered=1" in done


def _build(work: Path) -> tuple[bytes, bytes]:
    from ebpm.build.guest import build_guest

    (work / "bench.h").write_text(BENCH_H)
    (work / "bench.bpf.c").write_text(BENCH_BPF_C)
    (work / "app.c").write_text(BENCH_APP_C)
    multiarch = f"/usr/include/{os.uname().machine}-linux-gnu"
    obj = work / "bench.bpf.o"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I", multiarch, "-I", str(work),
                    "-c", str(work / "bench.bpf.c"), "-o", str(obj)], check=True)
    subprocess.run(["llvm-strip", "-g", str(obj)], check=True)
    wasm = build_guest(work, obj).read_bytes()
    return obj.read_bytes(), wasm


class _Generator:
    """A process that makes `n` getppid calls once released (so its pid is known beforehand)."""

    def __init__(self, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", GENERATOR.format(n=n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()
        self.pid = self.proc.pid
        self.released = 0.0

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.released = time.perf_counter()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait(self) -> None:
        self.proc.wait(timeout=60)


def _wasm_run(wasm: bytes, n: int, work: Path, cache: Path) -> tuple[float, int, bool, RunResult]:
    from ebpm.loader.wasm.host import run_guest

    gen = _Generator(n)
    out = work / f"wasm-{n}.out"
    out.unlink(missing_ok=True)  # a READY left by an earlier run would release too soon

    def release_when_ready() -> None:
        while not (out.exists() and b"READY" in out.read_bytes()):
            time.sleep(0.001)
        gen.release()

    watcher = threading.Thread(target=release_when_ready, daemon=True)
    watcher.start()
    result = run_guest(wasm, args=[str(gen.pid), str(n)], name="bench", duration=120,
                       stdout=out, cache=cache, handle_signals=False)
    end = result.last_event_at
    gen.wait()
    text = out.read_text()
    done = [line for line in text.splitlines() if line.startswith("DONE")]
    got = int(done[0].split()[1]) if done else 0
    return end - gen.released, got, "ordered=1" in text, result


def _native_run(obj_bytes: bytes, n: int) -> tuple[float, int, tuple[float, float, float]]:
    from ebpm.loader import libbpf

    gen = _Generator(n)
    count = 0

    def on_event(data: bytes) -> None:
        nonlocal count
        count += 1

    t0 = time.perf_counter()
    with libbpf.BpfObject.open_memory(obj_bytes, name="bench_bpf") as obj:
        t1 = time.perf_counter()
        obj.map(".rodata").set_initial_value(struct.pack("<I", gen.pid))
        obj.load()
        t2 = time.perf_counter()
        obj.program("bench_getppid").attach()
        t3 = time.perf_counter()
        with libbpf.RingBuffer(obj.map("events").fd, on_event) as rb:
            gen.release()
            deadline = time.monotonic() + 120
            while count < n and time.monotonic() < deadline:
                rb.poll(100)
            end = time.perf_counter()
    gen.wait()
    return end - gen.released, count, (t1 - t0, t2 - t1, t3 - t2)


CALLEE_WAT = """
(module
  (memory (export "memory") 1)
  (table (export "__indirect_function_table") 1 funcref)
  (elem (i32.const 0) $cb)
  (func $cb (export "cb") (param i32 i32 i32) (result i32)
    (i32.add (local.get 0) (i32.add (local.get 1) (local.get 2)))))
"""


def _call_cost(calls: int = 20000) -> tuple[float, float]:
    """Seconds per call into a guest (i32,i32,i32)->i32: the host's fast path, Func.__call__."""
    import wasmtime

    from ebpm.loader.wasm.callback import FunctionTable
    from ebpm.loader.wasm.engine import engine

    store = wasmtime.Store(engine())
    store.set_epoch_deadline(1 << 40)
    instance = wasmtime.Instance(store, wasmtime.Module(engine(), CALLEE_WAT), [])
    exports = instance.exports(store)
    table = exports["__indirect_function_table"]
    assert isinstance(table, wasmtime.Table)
    fast = FunctionTable(table).get(store, 0)
    ctx = store._context()
    t0 = time.perf_counter()
    for i in range(calls):
        fast(ctx, i, 2, 3)
    t1 = time.perf_counter()
    slow = exports["cb"]
    assert isinstance(slow, wasmtime.Func)
    for i in range(calls):
        slow(store, i, 2, 3)
    t2 = time.perf_counter()
    return (t1 - t0) / calls, (t2 - t1) / calls


def main() -> list[str]:
    n = int(os.environ.get("EBPM_BENCH_WASM_EVENTS", "100000"))
    if os.geteuid() != 0:
        return ["wasm: skipped (needs root for BPF)"]
    tracefs = Path("/sys/kernel/tracing")
    if not (tracefs / "events").is_dir():
        subprocess.run(["mount", "-t", "tracefs", "tracefs", str(tracefs)], check=False)
    with tempfile.TemporaryDirectory(prefix="ebpm-bench-wasm-") as tmp:
        work = Path(tmp)
        obj_bytes, wasm = _build(work)
        cache = work / "cache"
        _, _, _, first = _wasm_run(wasm, 1000, work, cache)  # compiles and caches the module
        w_secs, w_got, ordered, res = _wasm_run(wasm, n, work, cache)
        _, _, n_warm = _native_run(obj_bytes, 1000)
        n_secs, n_got, n_times = _native_run(obj_bytes, n)
        app = _build_native(work, work / "bench.bpf.o")
        _c_run(app, 1000)
        # three runs a side, alternated (the wasm guest's first timed run is the one above)
        w_runs: list[tuple[float, int]] = [(w_secs, w_got)]
        c_runs = []
        for _ in range(3):
            c_runs.append(_c_run(app, n))
            if len(w_runs) < 3:
                w_runs.append(_wasm_run(wasm, n, work, cache)[:2])
    # start-up figures: the better of two runs of each path (the first pays for cold caches)
    n_open, n_load, n_attach = (min(a, b) for a, b in zip(n_warm, n_times, strict=True))
    t1, t2 = first.timings, res.timings
    t = type(t2)(**{k: min(getattr(t1, k), getattr(t2, k)) for k in ("open", "load", "attach",
                                                                     "close")})
    fast, slow = _call_cost()
    w_rate, n_rate = w_got / w_secs, n_got / n_secs
    import statistics

    c_rates = [got / secs for secs, got, _ in c_runs]
    w_rates = [got / secs for secs, got in w_runs]
    c_rate, w_med = statistics.median(c_rates), statistics.median(w_rates)
    c_ok = all(got == n and ordered for _, got, ordered in c_runs)
    wasm_start, native_start = t.open + t.load + t.attach, n_open + n_load + n_attach
    ms = 1000.0
    # the generator (a Python loop of getppid) bounds a side only when a loop that only counts
    # gets no more than that side from it
    bound = (f"the generator, a Python loop of getppid, feeds a loop that only counts "
             f"{n_rate:,.0f} events/s: neither side is bound by it" if n_rate > 1.2 * c_rate
             else "both near the generator's rate, a Python loop of getppid")
    clang = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout
    return [
        f"wasm guest vs native C consumer (the same app.c built with {clang.splitlines()[0]} "
        f"against libbpf, the same object and generator; medians of 3 alternated runs): wasm "
        f"{w_med:,.0f} events/s (range {min(w_rates):,.0f}-{max(w_rates):,.0f}), C "
        f"{c_rate:,.0f} events/s (range {min(c_rates):,.0f}-{max(c_rates):,.0f})"
        f"{'' if c_ok else ' (C lost events)'}, "
        f"ratio {w_med / c_rate:.2f}x; target >= 0.5x: "
        f"{'MET' if w_med / c_rate >= 0.5 else 'NOT MET'} ({bound})",
        f"wasm guest:  {w_got}/{n} events delivered ({'in order' if ordered else 'OUT OF ORDER'}) "
        f"in {w_secs:.3f} s = {w_rate:,.0f} events/s",
        f"native loop: {n_got}/{n} events (libbpf.RingBuffer, Python callback) in {n_secs:.3f} s "
        f"= {n_rate:,.0f} events/s",
        f"wasm/native events/s: {w_rate / n_rate:.2f}x (the native loop only counts; its rate "
        f"is bounded by the generator)",
        f"call into the guest: unchecked {fast * 1e6:.2f} us vs Func.__call__ {slow * 1e6:.2f} us"
        f" = {slow / fast:.1f}x faster",
        f"wasm start: compile {first.compile_seconds * ms:.1f} ms (cached: "
        f"{res.compile_seconds * ms:.2f} ms), instantiate "
        f"{res.instantiate_seconds * ms:.2f} ms, open {t.open * ms:.2f} ms, load "
        f"{t.load * ms:.2f} ms, attach {t.attach * ms:.2f} ms, close {t.close * ms:.1f} ms",
        f"native start: open {n_open * ms:.2f} ms, load {n_load * ms:.2f} ms, attach "
        f"{n_attach * ms:.2f} ms",
        f"wasm/native open+load+attach: {wasm_start / native_start:.2f}x",
    ]


if __name__ == "__main__":
    print("\n".join(main()))
