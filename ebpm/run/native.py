"""The native run: flags patched into .rodata, the object loaded and attached through
`ebpm.loader.session.Session`, events and map snapshots handed to an `EventSink` until a stop.

The kernel's work first: `Launch` starts libbpf's load (~10 ms, the GIL released) in a thread
as soon as the object and its flags are known, and everything else (the caller's printer, the
session's modules, the environment checks) is imported and set up while it runs. So this
module imports at its top only what starting the load needs (tests/loader/test_loader_registry.py
lists what `ebpm run DIR` may import before the load thread starts).
"""

from __future__ import annotations

import os
import sys
import time

# _thread, not threading: threading is imported after the load starts
from _thread import allocate_lock, start_new_thread

from ebpm import log
from ebpm.errors import EbpmError, LoadError, UsageError
from ebpm.record import replace
from ebpm.run.source import LocalPackage

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping, Sequence
    from types import FrameType
    from typing import Any, TypeVar

    from ebpm.loader.loading import Background
    from ebpm.loader.session import Session
    from ebpm.loadtime import LoadTime
    from ebpm.package import PackageConfig
    from ebpm.run.sink import EventSink, RunSummary
    from ebpm.run.source import StagedPackage

    T = TypeVar("T")

__all__ = ["DEFAULT_INTERVAL", "Launch", "complete_config", "package_help", "run_object",
           "run_session", "SignalStop", "signals_stop_runs", "Warm"]

DEFAULT_INTERVAL = 1.0  # seconds between map snapshots of packages without an event stream
_POLL_MS = 100.0  # longest single wait, so that `stop` and the deadline are noticed
_LAST_SNAPSHOT_SLACK = 0.05  # seconds: a snapshot this close to the deadline is the final one
STOP_GRACE = 5.0  # seconds a stop may take (detach, final snapshot, flush) before a hard exit
_SIGNAL_EXIT_BASE = 128  # a shell's exit status for "killed by signal N": 128 + N
_log = log.get("ebpm.run")


def complete_config(pkg: LocalPackage) -> PackageConfig:
    """Fill programs, maps, events and args from the object when the metadata lacks them."""
    config = pkg.config
    if config.programs:
        return config
    from ebpm.build.metadata import extract_given

    derived = extract_given(pkg.require_object(), where=pkg.origin or config.name,
                            sidecar_btf=pkg.btf, name=config.name, version=config.version)
    return replace(
        config,
        programs=derived.programs,
        maps=config.maps or derived.maps,
        events=config.events or derived.events,
        args=config.args or derived.args,
    )


def package_help(pkg: LocalPackage) -> str:
    """The `ebpm run X -- -h` text: the package's description and its flags."""
    from ebpm.loader.args import help_text

    config = complete_config(pkg)
    text = help_text(config.name, config.args)
    if config.description:
        text = f"{config.name}: {config.description}\n\n{text}"
    return text


class _Stop(Exception):
    pass


class Warm:
    """Where loaded sessions wait, detached, between runs of the same package with the same
    load-time values (the agent's warm cache, `ebpm.serve.warm`). This default keeps none."""

    def take(self, key: tuple[Any, ...]) -> Session | None:
        """A detached session loaded for `key`, now the caller's; None: load it."""
        return None

    def give(self, key: tuple[Any, ...], session: Session) -> bool:
        """Keep `session` (its run is over) for `key`, detached; False: not kept (the caller
        closes it)."""
        return False


def _flags_for(
    obj: bytes, config: PackageConfig | LoadTime, argv: Sequence[str]
) -> tuple[Callable[[bytes | None], bytes] | None, dict[str, Any]]:
    """The flags given in `argv`: how they patch the object's .rodata image (None: no flag
    given; applied by `ebpm.loader.loading.prepare` to the image libbpf read from the ELF, so
    that nothing parses the ELF here, before the load starts) and the values given."""
    from ebpm.loader.args import parse_args, patch_rodata

    parsed = parse_args(config.args, argv)
    if not parsed.values:
        return None, parsed.values
    offsets = None  # the config's own (`ebpm build` wrote them); else the object's BTF
    if any(a.offset < 0 for a in config.args if a.name in parsed.values):
        from ebpm.loader.btf import Btf

        offsets = {v.name: v.offset for v in Btf.parse(obj).datasec(".rodata")}

    def patch(rodata: bytes | None) -> bytes:
        if rodata is None:
            raise UsageError(f"{config.name}: the object has no .rodata to set flags in")
        return patch_rodata(rodata, config.args, parsed, offsets)

    return patch, parsed.values


def _refuse_other_arch(spec: PackageConfig | LoadTime) -> None:
    """A package built for another architecture is refused, naming both (`check_requirements`,
    which `Launch.run` calls before the load is taken: here for an object libbpf could not
    even open, whose error would not say why)."""
    from ebpm.arches import runs_on

    if not runs_on(spec.requirements.arch, os.uname().machine):
        from ebpm.loader.environment import check_requirements

        check_requirements(spec.requirements, name=spec.name)


class Launch:
    """A native run of `obj` with `config` whose load has begun; `run(...)` streams it (see
    `run_object`). Made as soon as the object and its flags are known: libbpf's load (~10 ms,
    the GIL released) runs in a thread from here, so that what the caller sets up before
    `run` (its printer) and what `run` imports and checks first (the session's modules, the
    environment) cost nothing on the way to the first event. Leaving the `with` block without
    `run` (an error, Ctrl-C) drops the load.

    With `warm` (and `warm_key`, what identifies obj, config and btf: the package's digest) a
    session loaded earlier with the same .rodata and targets is attached again instead of
    loading anew, and the session is handed back to `warm` detached at the end.

    `staged`: a built directory (`ebpm.run.source.StagedPackage`; then `config` is its text
    form's part, `ebpm.loadtime`, which the run needs, and `btf` is its sidecar, read at
    `run`): its config.json is parsed only when `config` is asked for (`--metrics`)."""

    def __init__(self, obj: bytes, config: PackageConfig | LoadTime, *,
                 btf: bytes | None = None, args: Sequence[str] = (),
                 attach: Mapping[str, str] | None = None, warm: Warm | None = None,
                 warm_key: str = "", staged: StagedPackage | None = None,
                 identity: str | None = None) -> None:
        from ebpm.loader import corecache

        self.obj, self.btf, self.attach = obj, btf, attach
        self.identity = identity
        self.core_btf = corecache.lookup(obj, identity)
        self.warm = warm
        self._staged = staged
        self._config: PackageConfig | None = None
        # what the run needs of the config: a staged package's text form, else the whole
        self.spec: PackageConfig | LoadTime = config
        if staged is None:  # (then `config` is the whole config)
            whole: PackageConfig = config  # type: ignore[assignment]
            self.spec = self._config = complete_config(LocalPackage(obj, whole, btf))
        self.rodata, self.given = _flags_for(obj, self.spec, args)
        self.key = ((warm_key, tuple(sorted(self.given.items())),
                     tuple(sorted((attach or {}).items())))
                    if warm is not None and warm_key else None)
        self.background: Background | None = None
        if self.key is None:  # libbpf's load while the rest is imported
            from ebpm.loader.loading import Background

            try:
                self.background = Background(obj, self.spec, rodata=self.rodata,
                                             attach=attach or {}, core_btf=self.core_btf)
            except LoadError:  # one libbpf cannot open: for another machine? (a big-endian
                _refuse_other_arch(self.spec)  # one says "endianness mismatch") say that
                raise

    @property
    def config(self) -> PackageConfig:
        """The package's whole config (a staged package's config.json parsed now)."""
        if self._config is None:
            assert self._staged is not None
            self._config = complete_config(self._staged.complete())
        return self._config

    @property
    def values(self) -> dict[str, Any]:
        """Every flag's value for this run: its default, or as given."""
        values: dict[str, Any] = {a.name: a.default for a in self.spec.args}
        values.update(self.given)
        return values

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def discard(self) -> None:
        """Drop the load (if no session took it): waits for it and closes the object."""
        background, self.background = self.background, None
        if background is not None:
            background.discard()

    def run(self, *, duration: float | None = None, max_events: int | None = None,
            interval: float | None = None, sink: EventSink | None = None,
            stop: threading.Event | None = None) -> RunSummary:
        """Stream the run to `sink` until a stop (see `run_object`), then detach everything."""
        from ebpm.loader.display import unit_for
        from ebpm.loader.environment import check_environment, check_requirements
        from ebpm.loader.session import Session

        config, key, warm = self.spec, self.key, self.warm
        if self._staged is not None:
            self.btf = self._staged.sidecar()
        unit = unit_for(str(config.display.get("unit", "")), self.values)
        check_requirements(config.requirements, name=config.name)
        check_environment(need_btf=config.requirements.btf)

        def start() -> Session:
            if key is not None and warm is not None:
                session = warm.take(key)
                if session is not None:
                    try:
                        session.reattach()
                        return session
                    except (EbpmError, OSError) as err:
                        _log.info("%s: attach the warm session again: %s; loading anew",
                                  config.name, err)
                        session.close()
            started, self.background = self.background, None
            session = Session.start(self.obj, config, sidecar_btf=self.btf, rodata=self.rodata,
                                    attach=self.attach, unit=unit, background=started,
                                    core_btf=self.core_btf)
            if self.core_btf is None:  # the CO-RE cache's types, for the next load of it
                from ebpm.loader import corecache

                making.append(corecache.make_later(self.obj, self.identity))
            return session

        def release(session: Session) -> None:
            if key is not None and warm is not None and session.warmable:
                try:
                    if warm.give(key, session):
                        return
                except (EbpmError, OSError) as err:
                    _log.info("%s: keep the session warm: %s", config.name, err)
            session.close()

        making: list[Callable[[], str | None] | None] = []
        try:
            return run_session(start, package=config.name, duration=duration,
                               max_events=max_events, interval=interval, sink=sink, stop=stop,
                               unit=unit, release=release)
        finally:
            for wait in making:
                if wait is not None:
                    wait()


def run_object(
    obj: bytes,
    config: PackageConfig,
    *,
    btf: bytes | None = None,
    args: Sequence[str] = (),
    duration: float | None = None,
    max_events: int | None = None,
    interval: float | None = None,
    attach: Mapping[str, str] | None = None,
    sink: EventSink | None = None,
    stop: threading.Event | None = None,
    warm: Warm | None = None,
    warm_key: str = "",
) -> RunSummary:
    """Load `obj` with `config`, stream events/maps to `sink`, detach everything at the end
    (`Launch`, then its `run`; `warm`, `warm_key`: see `Launch`).

    Result maps (counters, histograms) are reported every `interval` seconds and emptied, like
    libbpf-tools do, then once more at the end with the counts since the last report.

    Stops after `duration` seconds, `max_events` events, when `stop` is set, or on Ctrl-C or
    SIGTERM: a signal only sets a flag that the loop checks between polls (never an exception
    inside a libbpf callback or a blocked write); the stop then has STOP_GRACE seconds before
    the process exits at once, and a second signal exits at once (kernel attachments are
    links: they go with the process). Raises LoadError (with the verifier log tail) when the
    kernel refuses it.
    """
    with Launch(obj, config, btf=btf, args=args, attach=attach, warm=warm,
                warm_key=warm_key) as launch:
        return launch.run(duration=duration, max_events=max_events, interval=interval,
                          sink=sink, stop=stop)


def run_session(
    open_session: Callable[[], Session],
    *,
    package: str,
    duration: float | None = None,
    max_events: int | None = None,
    interval: float | None = None,
    sink: EventSink | None = None,
    stop: threading.Event | None = None,
    unit: str = "",
    release: Callable[[Session], None] | None = None,
) -> RunSummary:
    """Open a session (`open_session()`: loaded and attached, or adopted from pins), stream its
    events and maps to `sink` until a stop (see `run_object`), then close it (or hand it to
    `release`). `unit`: the histograms' unit, for the summary."""
    from ebpm.run.sink import EventSink

    sink = sink or EventSink()
    started = time.monotonic()
    deadline = started + duration if duration is not None else None
    with signals_stop_runs(now=False) as signals:  # (installed by `_run`)
        return _run(open_session, signals, package=package, started=started, deadline=deadline,
                    max_events=max_events, interval=interval, sink=sink, stop=stop, unit=unit,
                    release=release)


def _run(
    open_session: Callable[[], Session], signals: SignalStop, *, package: str, started: float,
    deadline: float | None, max_events: int | None, interval: float | None, sink: EventSink,
    stop: threading.Event | None, unit: str,
    release: Callable[[Session], None] | None = None,
) -> RunSummary:
    from ebpm.run.sink import RunStart, RunSummary, announce

    stopped_by = "signal"
    session: Session | None = None
    output: tuple[tuple[str, int], ...] = ()  # iterator programs: bytes each wrote
    own: int | None = None  # the run's own wake fd (no Stop given), closed when it ends
    wake_fd: int | None = None
    from ebpm import interrupts

    try:
        # the handlers (`signal`, with enum: ~5 ms) now, unless SIGINT and SIGTERM are held in
        # the kernel (`ebpm run`: ebpm.interrupts) and none came yet: then as soon as the
        # first event is out (written at once: the pipe is empty, that write cannot block,
        # while a later one may, into a reader that stops reading), or after the first poll
        # or wait without one (at most 100 ms)
        if not interrupts.blocked() or interrupts.pending():
            signals.install()
        if signals.signum is not None:  # stopped before anything was loaded
            raise KeyboardInterrupt
        session = open_session()
        count = 0
        emit = sink.event
        flush = getattr(sink, "flush", None)  # (a duck-typed sink may have none: `announce`)

        def on_event(event: dict[str, Any]) -> None:
            nonlocal count
            emit(event)
            count += 1
            if count == 1:  # (see above)
                if flush is not None:
                    flush()
                signals.install()
            if max_events is not None and count >= max_events:
                raise _Stop

        # the wait for events ends at once on a stop or a signal: the caller's Stop (its
        # eventfd), or an eventfd of the run's own that the signal handler writes (a plain
        # Event: the next poll's end). No Stop made here: a run needs no threading
        fileno = getattr(stop, "fileno", None)
        wake_fd = fileno() if fileno is not None else (
            own := os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))
        if wake_fd is not None:
            signals.wake_fds.append(wake_fd)
        streams = session.open_events(on_event, wake_fd)
        sink.started(session)
        trace = session.events.trace  # bpf_printk lines, from a tracefs instance of our own
        announce(sink, RunStart(package, "native", attached=session.attached,
                                events=tuple(m for m, _ in session.event_maps()) + (
                                    (f"bpf_printk (tracefs instance {trace.name})",)
                                    if trace else ()),
                                results=session.result_maps,
                                iterators=tuple(name for name, _ in session.iterators),
                                duration=deadline - started if deadline is not None else None))
        for line in session.attached:
            _log.info("attached %s", line)
        iterated = ""
        if session.iterators and getattr(sink, "iterates", True):  # one-shots: read now
            take = getattr(sink, "output", None)
            output = session.iterate(take if take is not None else lambda name, data: None)
            if flush is not None:
                flush()
            if not streams:  # nothing more will come
                iterated = "iterated"
        if interval is None and not streams:
            interval = DEFAULT_INTERVAL
        next_snapshot = time.monotonic() + interval if interval else None
        stopped_by = iterated or (
            "max-events" if max_events is not None and max_events <= 0 else "")
        while not stopped_by:
            if signals.signum is not None:
                stopped_by = "signal"
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                stopped_by = "duration"
                break
            if stop is not None and stop.is_set():
                stopped_by = "stopped"
                break
            wait = _POLL_MS
            if deadline is not None:
                wait = min(wait, (deadline - now) * 1000)
            if next_snapshot is not None:
                wait = min(wait, max(0.0, (next_snapshot - now) * 1000))
            try:
                if streams:
                    if session.poll(max(0, int(wait))) and flush is not None:
                        flush()  # the batch is over (a printer writes it out at once)
                elif wake_fd is not None:
                    _wait_readable(wake_fd, wait)
                else:
                    time.sleep(max(0.0, wait / 1000))
            except _Stop:
                stopped_by = "max-events"
                break
            signals.install()  # (once: see above)
            now = time.monotonic()
            if next_snapshot is not None and now >= next_snapshot:
                # the last interval before the deadline is the final snapshot's
                if deadline is None or now < deadline - _LAST_SNAPSHOT_SLACK:
                    sink.maps(session.snapshot_maps(clear=True), False)
                next_snapshot += interval or DEFAULT_INTERVAL
    except KeyboardInterrupt:  # a handler of the caller's raised it (not on the main thread)
        stopped_by = "signal"
    finally:
        if wake_fd is not None:
            signals.wake_fds.remove(wake_fd)
        if own is not None:
            os.close(own)
        final: list[Any] = []
        figures: tuple[int, int, tuple[str, ...], tuple[Any, ...]] = (0, 0, (), ())
        if session is not None:
            try:
                if session.result_maps:
                    final = session.snapshot_maps()
                    sink.maps(final, True)
            finally:
                figures = (session.events_seen, session.lost, session.attached, session.dropped)
                if release is not None:
                    release(session)  # (it may be attached again elsewhere at once)
                else:
                    session.close()
    return RunSummary(
        package=package,
        events=figures[0],
        lost=figures[1],
        seconds=time.monotonic() - started,
        stopped_by=stopped_by or "signal",
        attached=figures[2],
        dropped=figures[3],
        maps=tuple((snap.name, len(snap.rows)) for snap in final),
        unit=unit if final and any(snap.kind == "hist" for snap in final) else "",
        output=output,
    )


def _wait_readable(fd: int, timeout_ms: float) -> None:
    """Until `fd` is readable or the timeout (poll(2): any fd number, where select(2) takes
    none above 1023, and the agent may hold more)."""
    import select

    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    waiter.poll(max(0, int(timeout_ms)))


_active: SignalStop | None = None


class signals_stop_runs:  # noqa: N801 - used like a function: `with signals_stop_runs():`
    """SIGINT/SIGTERM as a `SignalStop` for the block (the whole of `ebpm run`: fetching,
    loading and polling), so that no signal becomes an exception in a libbpf callback; nested
    blocks share the outer one. `now=False`: its handlers are installed only when the caller
    calls `install()` on it, or a nested block with `now=True` begins (`ebpm run DIR`'s are
    installed by the run once its first event is out: both signals are held in the kernel
    until then, `ebpm.interrupts`). (A class, not a contextlib generator: `ebpm run` imports no
    contextlib before libbpf's load starts.)"""

    def __init__(self, *, now: bool = True) -> None:
        self.now = now

    def __enter__(self) -> SignalStop:
        global _active
        self._own: SignalStop | None = None
        if _active is not None:
            if self.now:
                _active.install()
            return _active
        stopper = SignalStop()
        if self.now:
            stopper.install()
        _active = self._own = stopper
        return stopper

    def __exit__(self, *exc: object) -> None:
        global _active
        if self._own is not None:
            _active = None
            self._own.restore()


class SignalStop:
    """SIGINT and SIGTERM during a run (main thread only): the first sets `signum`, which the
    poll loop checks, and arms a hard exit after `grace` seconds (a stop blocked on a full
    stdout pipe still ends); a second one exits at once with 128 + N."""

    def __init__(self, grace: float = STOP_GRACE) -> None:
        self.grace = grace
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}
        self._installed = False
        self.wake_fds: list[int] = []  # eventfds the runs wait on: written on a signal
        self._interrupting = False  # a fetch runs (`interrupting`): a signal raises
        self._again = False  # a KeyboardInterrupt a callback swallowed, to raise once more
        # held until the run is over (restore): the grace thread's wait for it is the hard
        # exit's timer (_thread, not threading: made before libbpf's load starts)
        self._running = allocate_lock()
        self._running.acquire()

    def install(self) -> None:
        """The handlers in place (once), and a Ctrl-C held since ebpm started handed to them."""
        if self._installed:
            return
        self._installed = True
        import signal  # (with enum, ~5 ms: after the run's first event, see `_run`)

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._saved[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: Python delivers no signal here
                return
        from ebpm import interrupts

        if interrupts.take():  # a Ctrl-C while ebpm was starting (held by ebpm.cli.main)
            self._on_signal(signal.SIGINT, None)

    def interrupting(self, work: Callable[[], T]) -> T:
        """`work()` (the package fetched: nothing loaded yet) with a signal raising
        KeyboardInterrupt there, as in any other command, instead of only setting `signum`
        for a poll loop that has not started: a Ctrl-C while the registry is slow ends the
        run at once, "interrupted" (130). A signal that came before raises at once.

        A handler that runs inside a callback (a weakref's, as an import drops its module
        lock; a __del__) cannot raise: Python only reports the exception (the run then waited
        for the fetch, hard-stopped 5 s later). That report is taken here and the signal sent
        to this thread once more (`ebpm.interrupts.resend`). One that the work outlived, or
        that became another exception (an import turns it into "Error calling __set_name__"),
        is raised as the work ends."""
        if self.signum is not None:
            raise KeyboardInterrupt
        saved = sys.unraisablehook

        def swallowed(unraisable: sys.UnraisableHookArgs) -> None:
            if unraisable.exc_type is KeyboardInterrupt and self.signum is not None:
                from ebpm import interrupts

                self._again = True  # (the handler raises this time instead of hard-exiting)
                if interrupts.resend(self.signum):
                    return
                self._again = False
            saved(unraisable)

        self._interrupting = True
        sys.unraisablehook = swallowed
        done: list[T] = []
        try:
            done.append(work())
        except Exception:  # (the signal's, become another: "Error calling __set_name__")
            if self.signum is None:
                raise
        finally:
            self._interrupting = False
            sys.unraisablehook = saved
        if self.signum is not None:
            raise KeyboardInterrupt
        return done[0]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._again:  # the signal sent once more by `interrupting`: raised this time
            self._again = False
            if self._interrupting:
                raise KeyboardInterrupt
            return
        if self.signum is not None:
            _hard_exit(signum, "second signal: exiting at once")
        self.signum = signum
        start_new_thread(self._grace, (signum,))  # (a daemon: see ebpm.meanwhile)
        for fd in self.wake_fds:  # the run's wait ends now, not at its poll's timeout
            os.eventfd_write(fd, 1)
        if self._interrupting:  # (the hard exit stays armed: a cleanup that hangs ends too)
            raise KeyboardInterrupt

    def _grace(self, signum: int) -> None:
        if not self._running.acquire(timeout=self.grace):
            _hard_exit(signum, f"stopping took longer than {self.grace:g} s: exiting at once")

    def restore(self) -> None:
        """The run is over: disarm the hard exit and give the handlers back."""
        if self._running.locked():
            self._running.release()
        if self._saved:
            import signal

            for signum, handler in self._saved.items():
                signal.signal(signum, handler)
            self._saved.clear()


def _hard_exit(signum: int, why: str) -> None:
    """Leave now, without cleanup: every attachment is a link or fd the kernel closes."""
    try:
        os.write(2, f"ebpm: {why}\n".encode())
    except OSError:
        pass
    os._exit(_SIGNAL_EXIT_BASE + signum)
