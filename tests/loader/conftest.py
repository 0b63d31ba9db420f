"""Loader fixtures: packages built once per session, triggers, and the BPF leak checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ebpm.loader.environment import has_capabilities
from tests.bpfobjects import held_by_others, links, programs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TEST_BPF = Path(__file__).resolve().parent / "bpf"
_BPF_FD_KINDS = ("bpf-prog", "bpf_link", "bpf-map", "[perf_event]")  # as /proc names them


def require_bpf() -> None:
    """The only skip: a kernel/privilege probe that names what is missing."""
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("feature probe: the kernel has no BTF (/sys/kernel/btf/vmlinux)")
    if not has_capabilities():
        pytest.skip("feature probe: no CAP_BPF+CAP_PERFMON (run the loader tests as root)")


def compile_bpf(directory: Path, name: str, source: str, *flags: str) -> Path:
    """`source` written to DIRECTORY/NAME.bpf.c and compiled as the tests' own BPF programs
    are (clang -g -O2 -target bpf, the machine's multiarch headers, then `flags`); the
    object's path."""
    src, out = directory / f"{name}.bpf.c", directory / f"{name}.bpf.o"
    src.write_text(source)
    multiarch = f"/usr/include/{os.uname().machine}-linux-gnu"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", *flags, "-I", multiarch, "-c",
                    str(src), "-o", str(out)], check=True)
    return out


def bpf_fds() -> list[str]:
    """The BPF objects (programs, links, maps, perf events) this process holds open."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:") and any(k in target for k in _BPF_FD_KINDS):
            out.append(f"{fd}:{target}")
    return sorted(out)


LOADED_NAMES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def no_programs_left_behind() -> Iterator[None]:
    """Session check with bpftool: no program or link of ours outlives the tests (the same
    programs loaded meanwhile by another test run on this machine are that run's)."""
    before_progs, before_links = programs(), links()
    yield
    deadline = time.monotonic() + 3  # the kernel frees closed programs after an RCU period
    while True:
        new = {i: n for i, n in programs().items() if i not in before_progs and n in LOADED_NAMES}
        others = held_by_others(set(new))
        ours = {i: n for i, n in new.items() if i not in others}
        left = {i: p for i, p in links().items() if i not in before_links and p in ours}
        if not (ours or left) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not ours and not left, f"left behind: programs {ours}, links {left}"


@pytest.fixture(autouse=True)
def no_bpf_fds_leaked() -> Iterator[None]:
    """Every test closes every BPF fd it opened (programs, links, maps, perf events)."""
    before = set(bpf_fds())
    yield
    leaked = sorted(set(bpf_fds()) - before)
    assert not leaked, f"BPF fds left open: {leaked}"


@pytest.fixture(scope="session")
def vmlinux_h(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ebpm.build.vmlinux import vmlinux_header

    return vmlinux_header(cache_dir=tmp_path_factory.mktemp("vmlinux"))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, vmlinux_h: Path) -> Callable[[str], Path]:
    """build(name) -> a copy of examples/NAME or tests/loader/bpf/NAME, built by `ebpm build`."""
    from ebpm.build import build

    cache: dict[str, Path] = {}
    lock = threading.Lock()

    def get(name: str) -> Path:
        with lock:
            if name not in cache:
                src = EXAMPLES / name if (EXAMPLES / name).is_dir() else TEST_BPF / name
                dest = tmp_path_factory.mktemp("pkg") / name
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ebpm"))
                result = build(dest, vmlinux_h=vmlinux_h)
                LOADED_NAMES.update(p.name[:15] for p in result.config.programs)
                cache[name] = dest
            return cache[name]

    return get


@contextmanager
def started_run(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`ebpm run ARGS` and the first line of its stderr that is no warning (its start line);
    killed if still running at the end."""
    proc = subprocess.Popen([str(Path(sys.executable).with_name("ebpm")), "run", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line.startswith("warning:"):  # (--allow-unsigned says so first)
            line = proc.stderr.readline()
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


class Trigger:
    """Repeat `action` every `period` seconds in a thread until stopped."""

    def __init__(self, action: Callable[[], object], period: float = 0.05) -> None:
        self.action = action
        self.period = period
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopped.wait(self.period):
            self.action()

    def __enter__(self) -> Trigger:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()


@pytest.fixture
def trigger() -> Callable[..., Trigger]:
    return Trigger


class Collector:
    """A run Reporter that keeps everything it is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.snapshots: list[tuple[list[object], bool]] = []
        self.session: object = None

    def started(self, session: object) -> None:
        self.session = session

    def event(self, event: dict[str, object]) -> None:
        self.events.append(event)

    def maps(self, snapshots: list[object], final: bool) -> None:
        self.snapshots.append((snapshots, final))


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture(scope="session")
def adder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small binary whose add(a, b) the uprobe tests probe."""
    out = tmp_path_factory.mktemp("adder") / "adder"
    subprocess.run(["clang", "-O1", "-g", "-o", str(out), str(TEST_BPF / "hooks" / "adder.c")],
                   check=True)
    return out
