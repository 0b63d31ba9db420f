"""Fixtures for the wasm host tests: a kernel probe, guests compiled this session, leak checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.build.guest import build_guest
from tests.bpfobjects import held_by_others, programs
from tests.wasm.helpers import EXAMPLE, GUESTS, Guests

MULTIARCH = f"/usr/include/{os.uname().machine}-linux-gnu"
TRACEFS = Path("/sys/kernel/tracing")


def _kernel_lacks() -> str | None:
    """What this machine lacks for the wasm host tests, or None."""
    if os.geteuid() != 0:
        return "root (CAP_BPF, CAP_PERFMON)"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "BTF (/sys/kernel/btf/vmlinux)"
    if not (TRACEFS / "events").is_dir():
        subprocess.run(["mount", "-t", "tracefs", "tracefs", str(TRACEFS)], check=False)
        if not (TRACEFS / "events").is_dir():
            return "tracefs (mount -t tracefs tracefs /sys/kernel/tracing)"
    from ebpm.loader import libbpf

    if not libbpf.probe_prog_type(5):  # BPF_PROG_TYPE_TRACEPOINT
        return "tracepoint programs"
    return None


@pytest.fixture(scope="session")
def kernel() -> None:
    lacks = _kernel_lacks()
    if lacks:
        pytest.skip(f"kernel probe: this machine lacks {lacks}")


def _clang_bpf(src: Path, out: Path, *includes: Path) -> Path:
    cmd = ["clang", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I", MULTIARCH]
    for inc in includes:
        cmd += ["-I", str(inc)]
    subprocess.run([*cmd, "-c", str(src), "-o", str(out)], check=True)
    subprocess.run(["llvm-strip", "-g", str(out)], check=True)  # keeps .BTF, drops DWARF
    return out


@pytest.fixture(scope="session")
def guests(tmp_path_factory: pytest.TempPathFactory) -> Guests:
    work = tmp_path_factory.mktemp("wasm-guests")
    pkg = work / "execsnoop"
    shutil.copytree(EXAMPLE, pkg)
    build = pkg / ".ebpm"
    build.mkdir()
    vmlinux = subprocess.run(
        ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
        check=True, capture_output=True,
    ).stdout
    (build / "vmlinux.h").write_bytes(vmlinux)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:  # clang runs are independent processes
        objs = {
            "execsnoop": pool.submit(_clang_bpf, pkg / "execsnoop.bpf.c",
                                     build / "execsnoop.bpf.o", build, pkg),
            "xdp": pool.submit(_clang_bpf, GUESTS / "xdp_pass.bpf.c", work / "xdp_pass.bpf.o",
                               GUESTS),
            "percpu": pool.submit(_clang_bpf, GUESTS / "percpu.bpf.c", work / "percpu.bpf.o",
                                  GUESTS),
            "perfbuf": pool.submit(_clang_bpf, GUESTS / "perfbuf.bpf.c",
                                   work / "perfbuf.bpf.o", GUESTS),
        }
        execsnoop_o = objs["execsnoop"].result()

        def guest(source: str, obj: Path) -> bytes:
            out = work / source.replace(".c", ".wasm")
            return build_guest(GUESTS, obj, sources=[GUESTS / source], output=out,
                               cflags=["-I", str(pkg)]).read_bytes()

        # guests sharing an object write the same skeleton: build the example's first
        execsnoop = build_guest(pkg, execsnoop_o).read_bytes()
        built = {
            "trap": pool.submit(guest, "trap.c", execsnoop_o),
            "forbidden": pool.submit(guest, "forbidden.c", objs["xdp"].result()),
            "maps": pool.submit(guest, "maps.c", objs["percpu"].result()),
            "perfbuf": pool.submit(guest, "perfbuf.c", objs["perfbuf"].result()),
            # skeletons are replaced atomically, so guests of one object build side by side
            "spin": pool.submit(guest, "spin.c", execsnoop_o),
            "tinygo": pool.submit(guest, "tinygo.c", execsnoop_o),
        }
        return Guests(
            execsnoop=execsnoop,
            trap=built["trap"].result(),
            spin=built["spin"].result(),
            forbidden=built["forbidden"].result(),
            maps=built["maps"].result(),
            tinygo=built["tinygo"].result(),
            perfbuf=built["perfbuf"].result(),
        )


OUR_PROGRAMS = {"execsnoop_exec", "wasm_test_xdp", "wasm_test_pcpu", "wasm_test_perf"}


def _bpf_fds() -> set[tuple[int, str]]:
    """This process's fds on BPF objects and perf events (what a leaked link holds)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:") and ("bpf" in target or "perf_event" in target):
            found.add((int(fd), target))
    return found


def _our_programs() -> set[int]:
    return {i for i, name in programs().items() if name in OUR_PROGRAMS}


@pytest.fixture
def no_leaks(kernel: None) -> Iterator[None]:
    """Fails the test when it leaves a BPF program, link, map or perf-event fd behind."""
    fds, progs = _bpf_fds(), _our_programs()
    yield
    assert _bpf_fds() == fds, "BPF/perf fds left open by the wasm host"
    left = _our_programs() - progs
    assert left - held_by_others(left) == set(), "test BPF programs still loaded (bpftool)"
