"""Formats from the ecosystem against ebpm's own: time to the first event of one program.

The program is eunomia-bpf's `bootstrap` (tests/corpus, unmodified): its ecc package.json
(`ebpm run bootstrap.json`), the wasm-bpf module ecli ships for it (`ebpm run bootstrap.wasm`,
whose own userspace prints the events), and the BPF object inside the package.json run natively
(`ebpm run bootstrap.bpf.o`) — the peer. Each run starts as a new process writing to a pty (so
that every side's output is line-buffered); a thread execs a uniquely named copy of /bin/true
every 2 ms, and the time is taken when a line naming it appears. Alternated, medians, ratios.
In the same rounds, the bare module's floor: CPython's start and `import wasmtime` alone.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from bench.common import EBPM, PYTHON, ROOT, ebpm_env, run_quiet, timed

CORPUS = ROOT / "tests" / "corpus" / "eunomia-bpf" / "ecli-tests"
ROUNDS = 11
LIMIT = 1.3  # the bound: within 1.3x of the native run


def _first_event_seconds(cmd: list[str], marker: str, program: str) -> float:
    stop = threading.Event()

    def trigger() -> None:
        while not stop.wait(0.002):
            subprocess.run([program], check=False)

    master, slave = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    thread = threading.Thread(target=trigger, daemon=True)
    thread.start()
    buf = b""
    try:
        deadline = start + 30
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            if marker.encode() in buf:
                return time.perf_counter() - start
        raise RuntimeError(f"{' '.join(cmd[:3])}: no event naming {marker} "
                           f"(output {buf[-200:]!r})")
    finally:
        stop.set()
        thread.join()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)


def main() -> list[str]:
    from ebpm.transfer.formats import eunomia_object

    with tempfile.TemporaryDirectory(prefix="ebpm-bench-formats-") as tmp_name:
        tmp = Path(tmp_name)
        marker = f"ebpmbench{os.getpid()}"
        program = tmp / marker
        shutil.copyfile("/bin/true", program)
        program.chmod(0o755)
        obj = eunomia_object(json.loads((CORPUS / "bootstrap.json").read_bytes()), where="json")
        (tmp / "bootstrap.bpf.o").write_bytes(obj)
        cmds = {
            "native bootstrap.bpf.o": [EBPM, "run", str(tmp / "bootstrap.bpf.o")],
            "package.json (ecc)": [EBPM, "run", str(CORPUS / "bootstrap.json")],
            "bare .wasm (wasm-bpf)": [EBPM, "run", str(CORPUS / "bootstrap.wasm")],
        }
        floors = {name: [PYTHON, "-c", code] for name, code in _FLOORS.items()}
        times: dict[str, list[float]] = {name: [] for name in [*cmds, *floors]}
        for cmd in cmds.values():  # warm the page cache and the compiled-module cache
            _first_event_seconds(cmd, marker, str(program))
        for _ in range(ROUNDS):
            for name, cmd in cmds.items():
                times[name].append(_first_event_seconds(cmd, marker, str(program)))
            for name, cmd in floors.items():
                times[name].append(timed(partial(run_quiet, cmd, env=ebpm_env())))
    med = {name: statistics.median(t) for name, t in times.items()}
    native = med["native bootstrap.bpf.o"]
    lines = [f"time to first event of eunomia's bootstrap, median of {ROUNDS} alternated runs:"]
    for name in cmds:
        spread = f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}"
        lines.append(f"  {name:<24} {med[name] * 1000:7.1f} ms  (range {spread} ms)")
    for name in ("package.json (ecc)", "bare .wasm (wasm-bpf)"):
        ratio = med[name] / native
        verdict = "ok" if ratio <= LIMIT else f"ABOVE {LIMIT}x"
        lines.append(f"  ratio {name} / native: {ratio:.2f}x ({verdict})")
    start, wasmtime = med["python -c pass"], med["import wasmtime"]
    lines.append(
        f"  the bare .wasm's floor, in the same rounds: CPython's start and `import wasmtime` "
        f"alone (wasmtime-py's bindings, no ebpm, no module, no kernel) {wasmtime * 1000:.1f} "
        f"ms = {wasmtime / native:.2f}x native (CPython's start alone {start * 1000:.1f} ms); "
        + (f"{LIMIT}x native ({LIMIT * native * 1000:.1f} ms) is below it: no run of a wasm "
           "module through wasmtime-py meets it from a new process (an agent that holds "
           "wasmtime does: bench/serve.py, bench/wasm.py)" if wasmtime > LIMIT * native else
           f"ebpm {(med['bare .wasm (wasm-bpf)'] - wasmtime) * 1000:.1f} ms above it"))
    return lines


# what a run of the bare .wasm cannot skip, in a new process: CPython's start, then the import
# of wasmtime-py (its ctypes bindings to libwasmtime: ~1,000 function prototypes made at import)
_FLOORS = {"python -c pass": "pass", "import wasmtime": "import wasmtime"}
