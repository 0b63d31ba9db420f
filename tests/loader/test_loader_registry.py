"""`ebpm run REF`: a package pushed to a real registry runs by reference (pull, then load)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.loader.conftest import ROOT, Trigger, require_bpf, started_run
from tests.registryd import Registryd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ebpm.run.native import SignalStop

pytestmark = [pytest.mark.kernel, pytest.mark.registry]


def _open_missing(path: str) -> None:
    """A failed open(2) of `path`: what opensnoop --failed reports."""
    try:
        open(path).close()
    except FileNotFoundError:
        pass


def test_run_by_reference_pulls_and_loads(built, registry: Registryd, ebpm_env: Path) -> None:
    require_bpf()
    from ebpm.transfer.push import push

    ref = f"{registry.host}/tools/opensnoop"
    push(built("opensnoop"), ref)
    path = f"/tmp/ebpm-ref-{uuid.uuid4().hex}"
    ebpm = str(Path(sys.executable).with_name("ebpm"))

    help_proc = subprocess.run([ebpm, "run", "--allow-unsigned", f"{ref}:0.1.0", "--", "-h"],
                               capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert help_proc.returncode == 0, help_proc.stderr
    assert "--failed    show failed opens only" in help_proc.stdout

    proc = subprocess.Popen([ebpm, "run", "--allow-unsigned", "--json", "--max-events", "1",
                             "--duration", "10", f"{ref}:0.1.0", "--", "--failed", "--pid",
                             str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    with Trigger(lambda: _open_missing(path), 0.05):
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    event = next(e for e in map(json.loads, out.splitlines()) if "ebpm" not in e)
    assert event["fname"] == path and event["pid"] == os.getpid() and event["ret"] == -2


def test_unsigned_reference_is_refused_by_default(built, registry: Registryd) -> None:
    from ebpm.errors import EbpmError
    from ebpm.run import resolve_target
    from ebpm.transfer.push import push

    ref = f"{registry.host}/tools/unsigned-sigsnoop"
    push(built("sigsnoop"), ref)
    with pytest.raises(EbpmError) as info:
        resolve_target(f"{ref}:0.1.0")
    assert "sign" in (info.value.message + (info.value.hint or "")).lower()


def test_a_package_built_for_another_arch_travels_but_does_not_run_here(
        tmp_path: Path, vmlinux_h: Path, registry: Registryd) -> None:
    """`[build] arch` is what the package records (it recorded the build machine's, so a
    cross-built package claimed this machine and ran here): build says so, inspect shows it,
    push and pull carry it, and run refuses it, directory or reference, naming both arches."""
    require_bpf()
    from ebpm.build.toolchain import target_arch
    from tests.loader.conftest import LOADED_NAMES

    LOADED_NAMES.add("handle_openat")  # (were the refusal late, its load would be watched)
    here, machine = target_arch(), os.uname().machine
    foreign = "arm64" if here != "arm64" else "x86"
    ebpm = str(Path(sys.executable).with_name("ebpm"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ebpm, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=60)

    root = tmp_path / "opens"
    assert run("init", "opens", "--dir", str(root)).returncode == 0
    with (root / "ebpm.toml").open("a") as f:
        f.write(f'\n[build]\narch = "{foreign}"\n')
    built = run("build", str(root), "--vmlinux", str(vmlinux_h))
    assert built.returncode == 0, built.stderr
    assert f"__TARGET_ARCH_{foreign}" in built.stderr
    assert (f"  arch    {foreign} (this machine is {machine}: it runs on {foreign} only)"
            in built.stdout.splitlines())
    config = json.loads((root / ".ebpm" / "config.json").read_text())
    assert config["requirements"]["arch"] == [foreign]

    refusal = [f"error: opens: built for {foreign}, and this machine is {machine}",
               f"hint: run it on {foreign}, or build it for this machine: `ebpm build` with "
               f'[build] arch = "{here}" (or none)']
    proc = run("run", str(root), "--duration", "5")
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (1, refusal, "")

    ref = f"{registry.host}/cross/opens:0.1.0"
    assert run("push", str(root), ref).returncode == 0
    shown = run("inspect", ref)
    assert shown.returncode == 0, shown.stderr
    assert f"Requires:    {foreign} (not this machine: {machine})" in shown.stdout.splitlines()
    pulled = run("pull", "--allow-unsigned", ref)
    assert pulled.returncode == 0, pulled.stderr
    proc = run("run", "--allow-unsigned", "--duration", "5", ref)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines()[-2:] == refusal


def test_a_big_endian_target_builds_big_endian_and_is_refused_by_arch(
        tmp_path: Path, vmlinux_h: Path) -> None:
    """`[build] arch = "s390"`: the object is big-endian (clang -target bpfeb: it was this
    machine's byte order, which no s390 kernel loads), and `ebpm run` here refuses it by its
    arch (was libbpf's "elf: endianness mismatch" from opening it, said of a damaged object)."""
    ebpm = str(Path(sys.executable).with_name("ebpm"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ebpm, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=60)

    root = tmp_path / "bigend"
    assert run("init", "bigend", "--dir", str(root)).returncode == 0
    with (root / "ebpm.toml").open("a") as f:
        f.write('\n[build]\narch = "s390"\n')
    built = run("build", str(root), "--vmlinux", str(vmlinux_h))
    assert built.returncode == 0, built.stderr
    assert "(clang -target bpfeb, __TARGET_ARCH_s390)" in built.stderr
    assert (root / ".ebpm" / "bigend.bpf.o").read_bytes()[5] == 2  # ELFDATA2MSB
    proc = run("run", str(root), "--duration", "5")
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith(f"error: bigend: built for s390, and this machine is "
                                  f"{os.uname().machine}\n"), proc.stderr


# what `ebpm run` must not import (issue 18): the HTTP stack and crypto on a cached run, rich,
# and click (the lean entry parses `ebpm run` from the command's declarations without it)
HEAVY = ("requests", "rich", "cryptography", "click")

_GUARDED_RUN = """
import sys
heavy = tuple(sys.argv[1].split(","))
tried = set()
order = {}

def audit(event, args):
    if event == "import":
        order.setdefault(str(args[0]), len(order))
        if str(args[0]).split(".")[0] in heavy:
            tried.add(str(args[0]))  # every import attempt, even one that fails or is undone
        if str(args[0]) == "ebpm.cli.printers":
            collector.setdefault("printer", gc.isenabled())

sys.addaudithook(audit)
import gc
import _thread  # (built in; not threading, whose import is part of what is audited)
_start = _thread.start_new_thread
collector = {}  # is the cycle collector on: as the load thread starts, at the printer, at the event

def start(*args, **kwargs):  # where each thread starts among the imports (libbpf's load first)
    order.setdefault(f"<thread {len(order)}>", len(order))
    collector.setdefault("load", gc.isenabled())
    return _start(*args, **kwargs)

_thread.start_new_thread = start  # (threading takes it from here when it is imported)
import io

class Marked(io.TextIOWrapper):  # the first event's line: its place among the imports
    def write(self, text):
        if "/tmp/ebpm-guard-" in text:
            order.setdefault("<event>", len(order))
            collector.setdefault("event", gc.isenabled())
        return super().write(text)

sys.stdout = Marked(sys.stdout.detach())
from ebpm.cli import main
try:
    main(sys.argv[2:])
finally:
    import json
    tried |= {m for m in sys.modules if m.split(".")[0] in heavy}
    collector["after"] = gc.isenabled()
    print("collector: " + json.dumps(collector), file=sys.stderr)
    print("import order: " + json.dumps(sorted(order, key=order.get)), file=sys.stderr)
    print("heavy imports: " + json.dumps(sorted(tried)), file=sys.stderr)
"""


def _guarded_run(target: str, tmp: Path, heavy: tuple[str, ...] = HEAVY,
                 pid_flag: str = "--pid") -> list[str]:
    """`ebpm run TARGET` through the real entry point (in the directory `tmp`), up to a
    printed event: no `heavy` module is imported (an audit hook sees every import attempt).
    Returns the modules in the order they were first imported."""
    path = f"/tmp/ebpm-guard-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", _GUARDED_RUN, ",".join(heavy), "run",
                             "--max-events", "1", "--duration", "10", target, "--", "--failed",
                             pid_flag, str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    with Trigger(lambda: _open_missing(path), 0.05):
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    header, event = out.splitlines()[:2]
    assert header.split()[:3] == ["TS", "PID", "UID"] and path in event, out
    assert err.splitlines()[-1] == "heavy imports: []", err
    # the cycle collector: off for the start-up (libbpf's load, the session's imports and
    # set-up), on again once the run is under way, before its first event (ebpm.cli.startup)
    assert json.loads(err.splitlines()[-3].removeprefix("collector: ")) == {
        "load": False, "printer": False, "event": True, "after": True}, err
    return json.loads(err.splitlines()[-2].removeprefix("import order: "))


# what a local `ebpm run DIR` must not import beyond HEAVY (issue 18: the run is measured
# against a C tool that starts in 13 ms): logging (ebpm.log imports it when a record is
# written), dataclasses (~5 ms, and ~0.5 ms per class: ebpm.record instead), typing (imported
# for type checkers only), and what dataclasses would bring (inspect, ast, tokenize)
LOCAL_RUN_AVOIDS = ("logging", "dataclasses", "typing", "inspect", "ast", "tokenize")


@pytest.mark.parametrize("spelling", ["path", "."])
def test_local_run_imports_no_heavy_module(built, tmp_path: Path, spelling: str) -> None:
    """`ebpm run DIR` of a built package directory, by its path or as `.` from inside it
    (never a registry reference: nothing parses it as one): no HEAVY module, none of
    LOCAL_RUN_AVOIDS."""
    require_bpf()
    from ebpm.loader import corecache

    pkg = built("opensnoop")
    target, cwd = (str(pkg), tmp_path) if spelling == "path" else (".", pkg)
    # a run after the object's first in a boot, its CO-RE cache file there (a first run's
    # bpftool thread imports what it needs beside the run, threading among them)
    obj = pkg / ".ebpm" / "opensnoop.bpf.o"
    corecache.make(obj.read_bytes(), corecache.file_identity(obj.stat()))
    order = _guarded_run(target, cwd, (*HEAVY, *LOCAL_RUN_AVOIDS))
    # libbpf's load starts in a thread (the first one) as soon as the object and its flags
    # are known (ebpm.run.native.Launch); what runs before it delays the first event, what
    # comes after runs meanwhile: AFTER_LOAD_STARTS only after, and before it nothing but
    # BEFORE_LOAD (what knowing the object's bytes and its .rodata needs)
    start = next(i for i, m in enumerate(order) if m.startswith("<thread"))
    early = [m for m in AFTER_LOAD_STARTS if m in order and order.index(m) < start]
    assert early == [], order
    unexpected = [m for m in order[:start] if m not in BEFORE_LOAD
                  and m.split(".")[0] not in STDLIB_BEFORE_LOAD]
    assert unexpected == [], (unexpected, order)
    # ... and its one perf buffer is read from memory (ebpm.loader.libbpf.perfbuf), the reader
    # imported while libbpf loads
    assert "ebpm.loader.libbpf.perfbuf" in order[start:], order
    # ... and nothing of AFTER_FIRST_EVENT comes before the first event is printed
    first = order.index("<event>")
    assert [m for m in AFTER_FIRST_EVENT if m in order[:first]] == [], order


# what a local run imports only after its first event is printed, if at all: threading (the
# run's wake fd is an eventfd of its own, libbpf's load a _thread; the detach's threads at the
# end are threading's, 0.8 ms that a run no longer pays on its way to the first event); and
# since the run's tenth round json, re, signal, enum and what enum brings (functools,
# collections), ~9 ms of a fresh process: a built directory runs from the text form of its
# config (ebpm.loadtime), the session's modules import re only for a refused load, a union of
# addresses or bpf_printk lines, and the run's signal handlers come once its first event is
# out (SIGINT and SIGTERM held in the kernel until then: ebpm.interrupts)
AFTER_FIRST_EVENT = ("threading", "ebpm.run.stop", "json", "re", "enum", "signal",
                     "functools", "collections", "ebpm.versions")


# what a local run imports only once libbpf's load has started (issue 18): pathlib (with
# urllib.parse), ipaddress (the display's), the session and its decoders, the perf/ring
# buffers and the attach calls, and the object's BTF parser (the flags' .rodata offsets come
# from the config) and the canonical JSON writer (a run writes no config)
AFTER_LOAD_STARTS = ("ebpm.canonical", "pathlib", "urllib.parse",
                     "ipaddress", "ebpm.loader.display",
                     "ebpm.loader.environment", "ebpm.loader.session", "ebpm.loader.decode",
                     "ebpm.loader.events", "ebpm.loader.snapshots", "ebpm.loader.attach",
                     "ebpm.loader.libbpf.buffers", "ebpm.loader.libbpf.ringbuf",
                     "ebpm.loader.libbpf.perfbuf", "mmap", "select",
                     "ebpm.loader.libbpf.links", "ebpm.loader.btf")


# what `ebpm run DIR` may import before libbpf's load starts (issue 18, "the kernel's work
# first"): the entry and the command line (cli, interrupts, lean, params, run's declaration,
# exits, startup), the package read (run's source, the package model's records, and the text
# form of its config: loadtime, with zlib for its check against config.json), the flags
# (loader.args; they patch the .rodata image libbpf read: no ELF parsing here) and what starts
# the load (loader.loading, the libbpf bindings of objects and maps, meanwhile's thread; the
# CO-RE cache's file for the object, loader.corecache: os and struct only). The printer, the
# sink, the session and its decoders, the environment checks: after. A module added here
# delays the first event of every run by its import time.
BEFORE_LOAD = frozenset({
    "ebpm", "ebpm.cli", "ebpm.interrupts", "ebpm.cli.lean", "ebpm.cli.params", "ebpm.cli.run",
    "ebpm.cli.exits", "ebpm.cli.startup", "ebpm.errors", "ebpm.record", "ebpm.log",
    "ebpm.run", "ebpm.run.dispatch", "ebpm.run.source", "ebpm.run.native", "ebpm.package",
    "ebpm.loadtime", "ebpm.loader", "ebpm.loader.args", "ebpm.loader.loading",
    "ebpm.loader.libbpf", "ebpm.loader.libbpf.library", "ebpm.loader.libbpf.maps",
    "ebpm.loader.libbpf.objects", "ebpm.meanwhile", "ebpm.loader.corecache",
})
# and of the standard library (top-level names): ctypes (the bindings, and Ctrl-C held in the
# kernel through libc's pthread_sigmask), gc's freeze, errno (the load thread is _thread's,
# built in: threading comes after)
STDLIB_BEFORE_LOAD = frozenset({
    "__future__", "types", "errno", "gc", "struct", "_struct", "ctypes", "_ctypes", "zlib",
})


def test_bare_object_run_imports_no_heavy_module(built, tmp_path: Path) -> None:
    """`ebpm run X.bpf.o`, its metadata derived from the object (ebpm.build.metadata, as for
    the ecosystem's bare objects): no HEAVY module, none of LOCAL_RUN_AVOIDS, and none of
    BARE_AFTER_LOAD_STARTS before libbpf's load starts."""
    require_bpf()
    obj = built("opensnoop") / ".ebpm" / "opensnoop.bpf.o"  # (its .btf sidecar beside it)
    order = _guarded_run(str(obj), tmp_path, (*HEAVY, *LOCAL_RUN_AVOIDS), pid_flag="--tgid")
    start = next(i for i, m in enumerate(order) if m.startswith("<thread"))
    assert [m for m in BARE_AFTER_LOAD_STARTS if m in order[:start]] == [], order


# what a bare object's run does not import before libbpf's load starts: what only JSON
# formats need (ebpm.transfer.formats imports it where they are read), re (the metadata's
# fallback names and type names with str methods; source docs only given a source), hashlib
# (the CO-RE cache names the object by its file), and collections (type annotations only);
# ~35 ms of the first event of eunomia's bootstrap.bpf.o with the BTF read lazily
BARE_AFTER_LOAD_STARTS = ("json", "re", "enum", "base64", "zlib", "hashlib", "collections",
                          "ebpm.digests", "ebpm.build.source_docs")


def test_cached_signed_run_imports_no_heavy_module(built, registry: Registryd) -> None:
    """`ebpm run REF` of a signed package already in the store, up to printed events: neither
    requests, rich, cryptography nor click is imported."""
    require_bpf()
    from ebpm.transfer.pull import pull
    from ebpm.transfer.push import push
    from ebpm.trust import keys
    from ebpm.trust import policy as trust

    key = keys.generate("guard")
    trust.add_trust(f"{registry.host}/**", key.public_path)
    ref = f"{registry.host}/guard/opensnoop:0.1.0"
    push(built("opensnoop"), ref, sign_key="guard")
    assert pull(ref).object  # now in the store, its signature verified and recorded
    # (nor semver: a full reference is never a project's locked short name, so no lockfile
    # machinery is imported for it)
    _guarded_run(ref, ROOT, (*HEAVY, "semver"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_wasm_package_by_reference_stops_on_a_signal(built, registry: Registryd,
                                                      ebpm_env: Path, signum: int) -> None:
    """Fetched with the run's handlers in place, then held in the kernel again until the
    guest's host installs its own (ebpm.cli.run): a signal right after the start line stops
    the guest, not the run's own handler, which the guest never hears (130 after 5 s)."""
    require_bpf()
    from ebpm.transfer.push import push

    ref = f"{registry.host}/tools/wasm-execsnoop:0.1.0"
    push(built("wasm-execsnoop"), ref)
    with started_run("--allow-unsigned", "--duration", "20", ref) as (proc, started):
        assert "running its wasm module" in started, started
        proc.send_signal(signum)
        assert proc.wait(timeout=20) == 0


def _delivered(pid: int, signum: int) -> bool:
    """Whether `signum` sent to process `pid` has left the kernel's pending sets (delivered to
    a handler: neither the process's shared set nor any thread's own holds it)."""
    bit = 1 << (signum - 1)
    task = Path(f"/proc/{pid}/task")
    sets = [Path(f"/proc/{pid}/status")] + [t / "status" for t in task.iterdir()]
    for status in sets:
        try:
            text = status.read_text()
        except OSError:  # (a thread that ended meanwhile)
            continue
        for line in text.splitlines():
            if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & bit:
                return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("name", ["opensnoop", "wasm-execsnoop"])
def test_a_run_signalled_while_its_package_is_fetched_ends_at_once(
        built, ebpm_env: Path, name: str, signum: int) -> None:
    """A signal while the package is still coming (its manifest held back by the registry
    until the run has ended) ends the run at once, "interrupted" (130), as it would end `ebpm
    pull`: nothing loaded, no guest started, nothing left in the store's staging. (Before, a
    native and a wasm run alike waited for the fetch, hard-stopped 5 s later.)"""
    require_bpf()
    import threading
    import time

    from ebpm.transfer.push import push
    from tests.hostile import Hostile

    server = Hostile().start()
    asked, go = threading.Event(), threading.Event()

    def held_back(h, m) -> None:  # type: ignore[no-untyped-def]
        asked.set()
        go.wait(30)
        server._honest(h, b"")

    try:
        ref = f"{server.host}/tools/{name}:0.1.0"
        push(built(name), ref)
        server.on("GET", rf"/v2/tools/{name}/manifests/.*", held_back)
        proc = subprocess.Popen([str(Path(sys.executable).with_name("ebpm")), "run",
                                 "--allow-unsigned", "--duration", "20", ref],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        try:
            assert asked.wait(30), "the run never asked for the manifest"
            proc.send_signal(signum)
            deadline = time.monotonic() + 10
            while not _delivered(proc.pid, signum) and time.monotonic() < deadline:
                time.sleep(0.01)
            _, err = proc.communicate(timeout=30)  # (the manifest still held back)
        finally:
            go.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        server.stop()
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "interrupted", err
    assert "running its wasm module" not in err and "attached" not in err, err
    assert not list((Path(os.environ["EBPM_HOME"]) / "ebpm").glob("staging-*"))


def test_a_signal_since_the_fetch_ends_a_wasm_run_before_its_guest() -> None:
    """One that came after the fetch, while the wasm module was read and compiled (the run's
    handler set `signum`), ends the run before its guest starts: the guest's host would
    never hear it."""
    from ebpm.cli.run import _hold_for_the_guest
    from ebpm.run.native import SignalStop

    stops = SignalStop()
    stops.signum = signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        _hold_for_the_guest(stops)


def _interrupted(fetch: Callable[[], str]) -> SignalStop:
    """`fetch` run as `ebpm run` fetches (the run's handlers in place, in this main thread):
    it must end with KeyboardInterrupt."""
    from ebpm.run.native import SignalStop

    stops = SignalStop(grace=60)
    stops.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            stops.interrupting(fetch)
    finally:
        stops.restore()
    return stops


def test_a_signal_that_lands_in_a_callback_still_ends_the_fetch() -> None:
    """A signal whose handler runs inside a callback (here a weakref's, as an import drops its
    module lock: what CI met once) cannot raise there, Python only reports it: the fetch
    still ends with KeyboardInterrupt at once, not when the registry answers (the run
    hard-stopped 5 s later)."""
    import weakref
    from _thread import allocate_lock

    never = allocate_lock()
    never.acquire()
    reached: list[str] = []

    def fetch() -> str:
        class Lock:
            pass

        lock = Lock()
        ref = weakref.ref(lock, lambda _: signal.raise_signal(signal.SIGINT))
        del lock  # (the callback: the handler runs in it, as raise_signal returns)
        reached.append("callback over")
        never.acquire(timeout=30)  # (a registry that holds its answer back)
        reached.append("answered")
        return "fetched" if ref() is None else ""

    stops = _interrupted(fetch)
    assert reached == ["callback over"]
    assert stops.signum == signal.SIGINT


def test_a_signal_that_an_import_turned_into_another_error_still_interrupts() -> None:
    """A KeyboardInterrupt raised in the middle of an import can come out as another exception
    (Python 3.11: "Error calling __set_name__"): the fetch still ends as interrupted, not
    with that error."""

    def fetch() -> str:
        try:
            signal.raise_signal(signal.SIGTERM)
        except KeyboardInterrupt as err:
            raise RuntimeError("Error calling __set_name__ on '_Field' instance") from err
        return "fetched"

    stops = _interrupted(fetch)
    assert stops.signum == signal.SIGTERM
