"""The load started in a thread while `ebpm run` finishes its imports and checks
(`ebpm.loader.loading.Background`): taken by the session, or discarded when the run ends
before it (a failed check, a refusal); nothing stays loaded or open either way (the autouse
fixtures check the fds and programs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ebpm.errors import MissingFeatureError, UsageError
from ebpm.loader import events, loading
from ebpm.loader.session import Session
from ebpm.package import Requirements
from ebpm.record import replace
from ebpm.run import load_path, run_object
from tests.loader.conftest import require_bpf

EBPM = Path(sys.executable).with_name("ebpm")


def test_a_background_load_is_taken_by_the_session(built) -> None:
    require_bpf()
    pkg = load_path(built("opensnoop"))
    started = loading.Background(pkg.object, pkg.config)
    with Session.start(pkg.object, pkg.config, background=started) as session:
        assert session.attached and all(p.fd >= 0 for p in session.obj.programs
                                         if p.autoload)
    with pytest.raises(AssertionError):  # one taker only
        started.take()


@pytest.mark.parametrize("name", ["opensnoop", "exitsnoop"])  # a perf and a ring buffer
def test_event_decoders_are_compiled_before_the_load_is_taken(built, monkeypatch, name) -> None:
    """Opening the event streams after the attach compiles no decoder, not even the batch form
    a buffer read from its memory needs: they are made while libbpf loads, not on the way from
    the attach to the first event."""
    require_bpf()
    pkg = load_path(built(name))

    def compiled_late(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder compiled after the load")

    started = loading.Background(pkg.object, pkg.config)
    with Session.start(pkg.object, pkg.config, sidecar_btf=pkg.btf,
                       background=started) as session:
        monkeypatch.setattr(events, "batch_decoder", compiled_late)
        monkeypatch.setattr(events, "compile_decoder", compiled_late)
        assert session.open_events(lambda event: None) == 1
        assert len(session.events._mapped) == 1  # read from its memory, in batches


def test_a_background_load_is_discarded(built) -> None:
    require_bpf()
    pkg = load_path(built("opensnoop"))
    loading.Background(pkg.object, pkg.config).discard()


def test_a_failed_check_discards_the_load_under_way(built) -> None:
    """A package this kernel is too old for: the check's error, the started load closed."""
    require_bpf()
    pkg = load_path(built("opensnoop"))
    config = replace(pkg.config, requirements=Requirements(kernel="99.0"))
    with pytest.raises(MissingFeatureError, match="99.0"):
        run_object(pkg.object, config, duration=0.1)


def test_an_unknown_attach_target_is_refused_before_any_thread(built) -> None:
    require_bpf()
    pkg = load_path(built("opensnoop"))
    with pytest.raises(UsageError, match="--attach nothere"):
        run_object(pkg.object, pkg.config, attach={"nothere": "tracepoint:a:b"}, duration=0.1)


def test_a_launch_left_without_running_drops_its_load(built) -> None:
    """`ebpm run` starts the load (`ebpm.run.launch`) before it sets up its printer: an error
    there (or Ctrl-C) leaves the block, and the load under way is waited for and closed."""
    require_bpf()
    from ebpm.run import launch

    pkg = load_path(built("opensnoop"))
    with pytest.raises(RuntimeError, match="the printer failed"):
        with launch(pkg, args=["--failed"]) as started:
            assert started.background is not None  # under way
            raise RuntimeError("the printer failed")
    assert started.background is None


# a refusal met in the thread, with the verifier's log: test_loader_fallback.py's
# test_verifier_rejection_shows_the_log_tail and the fallback tests run through it


def test_vv_still_shows_libbpfs_log_of_the_load(built) -> None:
    """The thread's load is quiet only when nobody reads libbpf's log: with -vv its lines
    (written during bpf_object__load) are there."""
    require_bpf()
    proc = subprocess.run([str(EBPM), "-vv", "run", str(built("opensnoop")), "--duration",
                           "0.1", "--", "--failed"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "libbpf: loading kernel BTF" in proc.stderr
    assert "libbpf: map 'events': created successfully" in proc.stderr


def test_decoders_are_compiled_while_libbpf_loads(built, monkeypatch) -> None:
    """What needs no kernel is done before the load is taken: the event type's decoder is
    compiled then (and reused at open), and none is compiled for a scratch map (opensnoop's
    `start`), which is not shown."""
    require_bpf()
    from ebpm.loader import events, snapshots

    steps: list[str] = []
    compile_event, compile_map = events.compile_decoder, snapshots.compile_decoder
    take = loading.Background.take

    def compiled_event(*args, **kwargs):  # type: ignore[no-untyped-def]
        steps.append("compile event")
        return compile_event(*args, **kwargs)

    def compiled_map(*args, **kwargs):  # type: ignore[no-untyped-def]
        steps.append("compile map")
        return compile_map(*args, **kwargs)

    def taken(self):  # type: ignore[no-untyped-def]
        steps.append("take")
        return take(self)

    monkeypatch.setattr(events, "compile_decoder", compiled_event)
    monkeypatch.setattr(snapshots, "compile_decoder", compiled_map)
    monkeypatch.setattr(loading.Background, "take", taken)
    pkg = load_path(built("opensnoop"))
    started = loading.Background(pkg.object, pkg.config)
    with Session.start(pkg.object, pkg.config, sidecar_btf=pkg.btf,
                       background=started) as session:
        assert session.open_events(lambda event: None) == 1
        assert session.fields[:2] == ("ts", "pid") and session.result_maps == ()
    assert steps == ["compile event", "take"]


def test_the_thread_calls_libbpf_once(built, monkeypatch) -> None:
    """libbpf's log is silenced and restored by the caller's thread: the load thread's only
    call into libbpf is the load (each call returns through the GIL the caller holds; one
    more before the load delayed its start by up to the 5 ms switch interval)."""
    require_bpf()
    import threading

    from ebpm.loader import libbpf

    where: list[str] = []
    enter, leave = libbpf.quiet.__enter__, libbpf.quiet.__exit__

    def entered(self):  # type: ignore[no-untyped-def]
        where.append(threading.current_thread().name)
        return enter(self)

    def left(self, *exc):  # type: ignore[no-untyped-def]
        where.append(threading.current_thread().name)
        return leave(self, *exc)

    monkeypatch.setattr(libbpf.quiet, "__enter__", entered)
    monkeypatch.setattr(libbpf.quiet, "__exit__", left)
    pkg = load_path(built("opensnoop"))
    loading.Background(pkg.object, pkg.config).take().obj.close()
    loading.Background(pkg.object, pkg.config).discard()
    assert where == [threading.main_thread().name] * 4


def test_the_open_is_quiet_too_and_a_failed_one_explains_itself(built, monkeypatch) -> None:
    """Unless libbpf's log is read (-vv), the object is opened silenced as well (its ~70 log
    lines would each call into Python); an open that fails is done again with the log, which
    the error carries."""
    require_bpf()
    from ebpm.errors import LoadError
    from ebpm.loader import libbpf
    from ebpm.loader.libbpf import library

    silenced: list[int] = []
    open_memory = libbpf.BpfObject.open_memory

    def opened(*args, **kwargs):  # type: ignore[no-untyped-def]
        silenced.append(library._silenced[0])
        return open_memory(*args, **kwargs)

    monkeypatch.setattr(libbpf.BpfObject, "open_memory", opened)
    pkg = load_path(built("opensnoop"))
    loading.Background(pkg.object, pkg.config).discard()
    assert silenced == [1]
    broken = pkg.object[:64] + b"\0" * 64  # an ELF header whose sections are gone
    with pytest.raises(LoadError) as info:
        loading.Background(broken, pkg.config)
    assert silenced == [1, 1, 0]  # quiet, then again with the log
    assert "libbpf: " in info.value.verifier_log
    assert library._silenced[0] == 0


def test_no_pattern_is_compiled_between_the_load_and_the_first_event(built, monkeypatch) -> None:
    """After the load is taken only kernel work and what needs it remain: a regular
    expression the way to the events needs (the result maps' names) is compiled while libbpf
    loads, not after (a `(?i)` alternation took ~0.1 ms to compile)."""
    require_bpf()
    import re._compiler  # (CPython 3.11's; `re` calls it on a cache miss only)

    compiled: list[str] = []
    after_load = [False]
    compile_ = re._compiler.compile
    take = loading.Background.take

    def compiling(pattern, flags=0):  # type: ignore[no-untyped-def]
        if after_load[0]:
            compiled.append(str(pattern))
        return compile_(pattern, flags)

    def taken(self):  # type: ignore[no-untyped-def]
        attempt = take(self)
        after_load[0] = True
        return attempt

    monkeypatch.setattr(re._compiler, "compile", compiling)
    monkeypatch.setattr(loading.Background, "take", taken)
    re.purge()  # (patterns compiled by earlier tests would hide a compile here)
    pkg = load_path(built("opensnoop"))
    started = loading.Background(pkg.object, pkg.config)
    with Session.start(pkg.object, pkg.config, sidecar_btf=pkg.btf,
                       background=started) as session:
        session.open_events(lambda event: None)
        after_load[0] = False
    assert compiled == []


_READERS = """
import sys
from ebpm.loader.events import import_readers
from ebpm.package import MapSpec, PackageConfig
maps = tuple(MapSpec(a.split("=")[0], a.split("=")[1]) for a in sys.argv[2:])
import_readers(PackageConfig("pkg", "0.1.0", maps=maps), printk=sys.argv[1] == "printk")
print(" ".join(m for m in ("ebpm.loader.libbpf.ringbuf", "ebpm.loader.libbpf.perfbuf", "mmap",
                            "select") if m in sys.modules))
"""

_RING = "ebpm.loader.libbpf.ringbuf"
_PERF = "ebpm.loader.libbpf.ringbuf ebpm.loader.libbpf.perfbuf"


@pytest.mark.parametrize(("printk", "maps", "imported"), [
    ("", ["events=perf_event_array", "start=hash"], f"{_PERF} mmap select"),
    ("", ["rb=ringbuf"], f"{_RING} mmap select"),
    ("", ["a=perf_event_array", "b=perf_event_array"], f"{_PERF} mmap select"),
    ("printk", ["events=perf_event_array"], f"{_PERF} mmap select"),
    ("printk", ["start=hash"], "select"),
    ("", ["start=hash"], ""),
])
def test_the_readers_a_package_needs_are_imported_while_libbpf_loads(
        printk: str, maps: list[str], imported: str) -> None:
    """`Session.start` imports, before it takes the load, what reading the package's streams
    needs (`events.import_readers`): the memory-mapped reader of a ring buffer or of a perf
    event array (with mmap and select), select's epoll for several streams or bpf_printk
    lines; nothing for a package without a stream."""
    out = subprocess.run([sys.executable, "-c", _READERS, printk, *maps], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == imported.split()
