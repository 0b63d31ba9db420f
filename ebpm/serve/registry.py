"""The agent's programs: start by reference, list, read maps, hot-swap and stop.

Each program runs the run use case (`ebpm.run.run_object`) in its own thread: the package is
pulled through the normal verified path, loaded and attached, and every decoded event goes to
the program's `FanOut`, which streams it to any number of readers. A request returns once the
program is attached (or with the loader's error). Hot swap starts the new version, attached
and publishing into the same fan-out, before the old one is stopped. A run that ends by itself
(its WebAssembly guest exits or traps, the kernel side fails) ends its streams, their end
records saying how (`ManagedProgram.outcome`), as a stop does.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebpm.errors import EbpmError, NotFoundError, UsageError
from ebpm.run.native import Warm
from ebpm.run.stop import Stop
from ebpm.serve.fanout import FanOut
from ebpm.serve.pins import Persisted, Persistence
from ebpm.serve.warm import WarmCache

__all__ = ["Loaded", "ProgramRegistry", "ManagedProgram", "Generation", "hist_buckets"]

log = logging.getLogger("ebpm.serve")

_MIN_PREFIX = 3  # characters of an id that may stand for it (docker's rule is 1: ids collide)
_STOP_TIMEOUT = 10.0  # seconds a run thread gets to detach after its stop is set


@dataclass(frozen=True)
class Loaded:
    """A package ready to load, with where it came from (digest, signer)."""

    ref: str
    digest: str
    signer: str
    package: Any  # ebpm.run.LocalPackage


def resolve(ref: str, *, allow_unsigned: bool = False) -> Loaded:
    """Pull REF through the normal verified path (store first) and read its layers."""
    from ebpm.run import LocalPackage
    from ebpm.transfer.pull import pull

    if ref.startswith(("/", "./", "../", "http://", "https://")) or ref.endswith(".o"):
        raise UsageError(f"{ref}: the agent runs registry packages only",
                         hint="push it (`ebpm push`) and pass its reference")
    pulled = pull(ref, prefer_cache=True, allow_unsigned=allow_unsigned)
    if not pulled.object and not pulled.wasm:  # (a bare wasm module carries its own object)
        raise NotFoundError(f"{ref}: the package has no BPF object layer",
                            hint="push a package built by `ebpm build` (or a .wasm module)")
    signer = ""
    if pulled.verification is not None:
        v = pulled.verification
        signer = ", ".join(s.key_id for s in v.signers)
        if not signer:
            signer = v.status.lower()
    pkg = LocalPackage(pulled.object, pulled.config, pulled.btf, ref, pulled.wasm)
    return Loaded(ref, pulled.digest, signer, pkg)


class _Guest:
    """What a WebAssembly userspace shows of itself: no maps or hooks the agent can see."""

    attached: tuple[str, ...] = ("(the package's WebAssembly userspace)",)
    dropped: tuple[Any, ...] = ()
    lost = 0
    streams: tuple[str, ...] = ("stdout",)  # each line it prints is an event
    result_maps: tuple[str, ...] = ()

    def snapshot_maps(self) -> list[Any]:
        return []


def _sink(generation: Generation, publish: Callable[[Any], None]) -> Any:
    """The run's EventSink: publishes events, tells the generation it is attached; its
    iterator programs stay attached, read anew on each request (`Generation.open_iterators`)."""
    from ebpm.run.sink import EventSink

    class _Sink(EventSink):
        iterates = False

        def __init__(self) -> None:
            self.event = publish  # type: ignore[method-assign,assignment]

        def started(self, session: Any) -> None:
            generation._attached(session)

        def maps(self, snapshots: list[Any], final: bool) -> None:
            if final:
                generation._closing()

    return _Sink()


@dataclass
class Generation:
    """One loaded version of a program: its run thread, session and figures."""

    loaded: Loaded
    args: tuple[str, ...]
    fanout: FanOut
    stop: Stop = field(default_factory=Stop)  # (wakes the run's poll: DELETE at once)
    ready: threading.Event = field(default_factory=threading.Event)
    session: Any = None
    error: BaseException | None = None
    started_at: float = 0.0  # time.time() when attached
    load_seconds: float = 0.0
    attached: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()  # where its events come from (event maps, bpf_printk)
    results: tuple[str, ...] = ()  # its result maps (GET .../maps)
    iterators: tuple[str, ...] = ()  # its iterator programs (GET .../output runs them)
    ended: bool = False
    finished: bool = False  # its run thread is done (`error`, `exit_status` are final)
    halted: bool = False  # stopped by the agent (DELETE, swap, exit), not ended by itself
    exit_status: int | None = None  # a WebAssembly guest's exit status, once it exited
    on_end: Callable[[Generation], None] | None = None  # told once its run ended by itself
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pins: Path | None = None  # pin links and maps here once attached (persist)
    adopt: bool = False  # take the program over from `pins` instead of loading it
    warm: WarmCache | None = None  # where its session waits, loaded, after it stops
    warm_start: bool = False  # attached from the warm cache (no load)
    _final_lost: int = 0
    _begin: float = 0.0

    def launch(self) -> None:
        """Load and attach in a new thread; returns once attached, raises the load error."""
        self._begin = time.monotonic()
        self.thread = threading.Thread(target=self._main, name=f"ebpm-{self.loaded.ref}",
                                       daemon=True)
        self.thread.start()
        self.ready.wait()
        if self.session is None:
            self.thread.join()
            assert self.error is not None
            raise self.error

    def _main(self) -> None:
        from ebpm.run import complete_config, run_object, run_session

        pkg = self.loaded.package
        import json

        encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
        publish = self.fanout.publish

        def publish_encoded(event: dict[str, Any]) -> None:
            publish(encode(event))  # once per event, however many readers stream it

        sink = _sink(self, publish_encoded)
        try:
            if pkg.wasm is not None and not self.adopt and self.pins is None:
                self._run_guest(publish_encoded)
            elif self.adopt and self.pins is not None:
                from ebpm.loader.pins import adopt_session

                config, pins, attached = complete_config(pkg), self.pins, self.attached
                run_session(lambda: adopt_session(pkg.object, config, pins, sidecar_btf=pkg.btf,
                                                  attached=attached),
                            package=config.name, interval=0, sink=sink, stop=self.stop)
            else:
                warm = (_Handback(self, self.warm) if self.warm is not None and self.pins is None
                        else None)
                run_object(pkg.object, pkg.config, btf=pkg.btf, args=self.args, interval=0,
                           sink=sink, stop=self.stop, warm=warm, warm_key=self.loaded.digest)
        except BaseException as err:  # reported through status/launch, never lost
            self.error = err
            if self.session is not None:
                log.warning("program %s failed: %s", self.loaded.ref, err)
        finally:
            self.stop.close()  # (polled no more)
            with self.lock:
                self.ended = self.finished = True
                by_itself = not self.halted
            self.ready.set()
            if by_itself and self.on_end is not None:
                self.on_end(self)

    def _run_guest(self, publish: Callable[[dict[str, Any]], None]) -> None:
        """The package's WebAssembly userspace: each line it prints is an event
        (`{"line": ...}`); it counts as started at its first line (or when it ends)."""
        import os
        import shutil
        import tempfile

        from ebpm.run import run_wasm

        workdir = Path(tempfile.mkdtemp(prefix="ebpm-guest-"))
        fifo = workdir / "stdout"
        os.mkfifo(fifo, 0o600)

        def pump() -> None:
            with open(fifo, "rb") as out:
                for raw in out:
                    if self.session is None:
                        self._attached(_Guest())
                    publish({"line": raw.decode(errors="replace").rstrip("\n")})

        reader = threading.Thread(target=pump, name="ebpm-guest-stdout", daemon=True)
        reader.start()
        try:
            summary = run_wasm(self.loaded.package, args=self.args, stop=self.stop,
                               stdout=fifo, allow_types=("tracing",))
            self.exit_status = summary.status
            if (summary.status and not self.stop.is_set()) or self.session is None:
                from ebpm.errors import WasmError

                raise WasmError(f"{self.loaded.ref}: the guest exited with status "
                                f"{summary.status}" + ("" if self.session else
                                                       " before printing anything"))
        finally:
            try:  # a guest that never opened its stdout: let the reader see the end
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            reader.join(10)
            shutil.rmtree(workdir, ignore_errors=True)

    def _attached(self, session: Any) -> None:
        if self.pins is not None and not self.adopt:
            from ebpm.loader.pins import pin_session

            pin_session(session, self.pins)  # raising here detaches and unloads it all
        self.load_seconds = time.monotonic() - self._begin
        self.started_at = time.time()
        self.attached = tuple(session.attached)
        self.dropped = tuple(f"{d.program}: {d.reason}" for d in session.dropped)
        if isinstance(session, _Guest):
            self.streams = session.streams
        else:
            self.streams = tuple(m for m, _ in session.event_maps()) + (
                ("bpf_printk",) if session.events.trace else ())
        self.results = tuple(session.result_maps)
        self.iterators = tuple(name for name, _ in getattr(session, "iterators", ()))
        self.session = session
        self.ready.set()

    def _closing(self) -> None:
        with self.lock:
            self.ended = True

    def snapshot_maps(self) -> list[Any]:
        """The result maps now (without emptying them); [] once the run is ending."""
        with self.lock:
            if self.ended or self.session is None:
                return []
            return list(self.session.snapshot_maps())

    def open_iterators(self) -> list[tuple[str, Any]] | None:
        """A new run of each of its iterator programs, (program, `BpfIterator`) in order, for
        the caller to read and close (each holds its program in the kernel while open, even
        if the run ends meanwhile); None once the run is ending."""
        from ebpm.loader.libbpf.links import BpfIterator

        with self.lock:
            if self.ended or self.session is None:
                return None
            opened: list[tuple[str, Any]] = []
            try:
                for name, link in getattr(self.session, "iterators", ()):
                    opened.append((name, BpfIterator(link)))
            except BaseException:
                for _, it in opened:
                    it.close()
                raise
            return opened

    def _handing_back(self, session: Any) -> None:
        """The run is over and its session goes to the warm cache, where another program may
        take it at once: read nothing of it from here on."""
        with self.lock:
            self._final_lost = self.kernel_lost
            self.ended = True

    @property
    def kernel_lost(self) -> int:
        if self.ended and self.warm is not None:
            return self._final_lost
        session = self.session
        try:
            return int(session.lost) if session is not None else 0
        except Exception:  # the session closed between the check and the read
            return 0

    def halt(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the run and wait until everything is detached."""
        with self.lock:
            self.halted = True
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
        with self.lock:
            self.ended = True


@dataclass
class ManagedProgram:
    """A program the agent runs, across hot swaps (one `Generation` per version)."""

    id: str
    current: Generation
    fanout: FanOut
    persist: bool = False
    created: float = field(default_factory=time.time)
    swaps: int = 0
    stopped: bool = False
    adopted: bool = False  # taken over from pins after a restart
    allow_unsigned: bool = False

    @property
    def status(self) -> str:
        gen = self.current
        if self.stopped:
            return "stopped"
        if gen.error is not None:
            return "failed"
        if gen.ended:
            return "exited"
        return "running"

    def outcome(self) -> dict[str, Any]:
        """How its run ended, for the end records of its streams: status (exited, failed,
        stopped), and the error (with its hint) or a WebAssembly guest's exit status."""
        gen = self.current
        out: dict[str, Any] = {"status": self.status}
        if gen.error is not None and not self.stopped:
            out["error"] = getattr(gen.error, "message", None) or str(gen.error)
            hint = getattr(gen.error, "hint", None)
            if hint:
                out["hint"] = hint
        if gen.exit_status is not None:
            out["exit_status"] = gen.exit_status
        return out

    def describe(self) -> dict[str, Any]:
        gen = self.current
        error = gen.error
        return {
            "id": self.id,
            "ref": gen.loaded.ref,
            "package": gen.loaded.package.config.name,
            "version": gen.loaded.package.config.version,
            "digest": gen.loaded.digest,
            "signer": gen.loaded.signer,
            "status": self.status,
            "error": str(error) if error is not None else None,
            "args": list(gen.args),
            "attached": list(gen.attached),
            "dropped": list(gen.dropped),
            "streams": list(gen.streams),
            "results": list(gen.results),
            "iterators": list(gen.iterators),
            "events": self.fanout.published,
            "lost": gen.kernel_lost,
            "readers": self.fanout.readers,
            "reader_lost": self.fanout.lost,
            "load_seconds": round(gen.load_seconds, 6),
            "warm_start": gen.warm_start,
            "uptime": round(time.time() - self.created, 3),
            "persist": self.persist,
            "adopted": self.adopted,
            "swaps": self.swaps,
        }


class _Handback(Warm):
    """A generation's door to the warm cache: taking counts as a warm start, and before the
    session is given back the generation stops reading it."""

    def __init__(self, generation: Generation, cache: WarmCache) -> None:
        self.generation = generation
        self.cache = cache

    def take(self, key: tuple[Any, ...]) -> Any:
        session = self.cache.take(key)
        self.generation.warm_start = session is not None
        return session

    def give(self, key: tuple[Any, ...], session: Any) -> bool:
        self.generation._handing_back(session)
        return self.cache.give(key, session)


def hist_buckets(slots: Sequence[int]) -> list[dict[str, int]]:
    """log2 histogram slots as buckets: slot i counts values in [2^i, 2^(i+1)) (slot 0: 0-1)."""
    out = []
    last = max((i for i, n in enumerate(slots) if n), default=-1)
    for i in range(last + 1):
        low = 0 if i == 0 else 1 << i
        out.append({"low": low, "high": (1 << (i + 1)) - 1, "count": int(slots[i])})
    return out


class ProgramRegistry:
    """Every program of this agent, by id; `persistence` keeps the ones started with persist."""

    def __init__(self, persistence: Persistence | None = None,
                 warm: WarmCache | None = None) -> None:
        self._lock = threading.Lock()
        self._programs: dict[str, ManagedProgram] = {}
        self._reserved: set[str] = set()
        self.persistence = persistence
        self.warm = warm if warm is not None else WarmCache()

    def start(self, ref: str, *, args: Sequence[str] = (), allow_unsigned: bool = False,
              persist: bool = False) -> ManagedProgram:
        """Pull, load and attach REF; the new program once it is attached."""
        if persist and self.persistence is None:
            raise UsageError("persist: this agent keeps no pins",
                             hint="start the agent with a --pin-dir")
        loaded = resolve(ref, allow_unsigned=allow_unsigned)
        fanout = FanOut()
        with self._lock:
            pid = self._new_id()
            self._reserved.add(pid)  # its pin directory is named after it before it is listed
        try:
            gen = self._launch(pid, 0, loaded, tuple(args), fanout, persist)
        finally:
            with self._lock:
                self._reserved.discard(pid)
        prog = ManagedProgram(pid, gen, fanout, persist=persist, allow_unsigned=allow_unsigned)
        with self._lock:
            self._programs[pid] = prog
        self._check_ended(prog, gen)
        self._record(prog)
        log.info("started %s (%s) as %s", ref, loaded.digest[:19], pid)
        return prog

    def _launch(self, pid: str, generation: int, loaded: Loaded, args: tuple[str, ...],
                fanout: FanOut, persist: bool) -> Generation:
        if persist and not loaded.package.object:
            raise UsageError(f"persist: {loaded.ref} is a bare WebAssembly module, and its "
                             "guest cannot outlive the agent",
                             hint="leave out --persist, or push a package built by `ebpm "
                             "build`, whose BPF object the agent can pin")
        gen = Generation(loaded, args, fanout, warm=self.warm,
                         on_end=functools.partial(self._ended, pid))
        if persist:
            assert self.persistence is not None
            self.persistence.prepare()
            gen.pins = self.persistence.pin_dir(pid, generation)
        try:
            gen.launch()
        except BaseException:
            self._unpin(gen)
            raise
        return gen

    def _unpin(self, gen: Generation) -> None:
        if gen.pins is not None:
            from ebpm.loader.pins import remove_pins

            try:
                remove_pins(gen.pins)
            except OSError as err:
                log.warning("remove pins %s: %s", gen.pins, err)

    def _record(self, prog: ManagedProgram) -> None:
        if not prog.persist or self.persistence is None:
            return
        gen = prog.current
        assert gen.pins is not None
        self.persistence.record(Persisted(
            id=prog.id, ref=gen.loaded.ref, digest=gen.loaded.digest, args=gen.args,
            allow_unsigned=prog.allow_unsigned, pins=str(gen.pins), attached=gen.attached,
            created=prog.created, swaps=prog.swaps))

    def adopt_all(self) -> list[ManagedProgram]:
        """Take over the programs a previous run of this agent left pinned."""
        if self.persistence is None:
            return []
        adopted = []
        for entry in self.persistence.load():
            pins = Path(entry.pins)
            try:
                from ebpm.loader.pins import pinned_links

                if not pinned_links(pins):
                    raise NotFoundError(f"{pins}: its pins are gone")
                loaded = resolve(_by_digest(entry.ref, entry.digest),
                                 allow_unsigned=entry.allow_unsigned)
                loaded = Loaded(entry.ref, loaded.digest, loaded.signer, loaded.package)
                fanout = FanOut()
                gen = Generation(loaded, entry.args, fanout, pins=pins, adopt=True,
                                 attached=entry.attached,
                                 on_end=functools.partial(self._ended, entry.id))
                gen.launch()
            except EbpmError as err:
                log.warning("could not adopt %s (%s): %s; forgetting it", entry.id, entry.ref,
                            err)
                self.persistence.forget(entry.id)
                continue
            prog = ManagedProgram(entry.id, gen, fanout, persist=True, created=entry.created,
                                  swaps=entry.swaps, adopted=True,
                                  allow_unsigned=entry.allow_unsigned)
            with self._lock:
                self._programs[prog.id] = prog
            self._check_ended(prog, gen)
            adopted.append(prog)
            log.info("adopted %s (%s) from %s", prog.id, entry.ref, pins)
        return adopted

    def _ended(self, pid: str, gen: Generation) -> None:
        """`gen`'s run ended by itself (its thread): if it is its program's current version,
        the program's streams end, saying how (one not listed yet: `_check_ended`)."""
        with self._lock:
            prog = self._programs.get(pid)
            if prog is None or prog.current is not gen:
                return
        self._close_ended(prog)

    def _check_ended(self, prog: ManagedProgram, gen: Generation) -> None:
        """After `gen` became `prog`'s current version: a run that ended by itself before
        (while its program was not listed yet, or not yet current) ends the streams now."""
        with gen.lock:
            over = gen.finished and not gen.halted
        if over:
            self._close_ended(prog)

    def _close_ended(self, prog: ManagedProgram) -> None:
        outcome = prog.outcome()
        log.info("%s (%s) %s%s", prog.id, prog.current.loaded.ref, outcome["status"],
                 f": {outcome['error']}" if "error" in outcome else "")
        prog.fanout.close(outcome)

    def _new_id(self) -> str:
        while True:
            pid = secrets.token_hex(6)
            if pid not in self._programs and pid not in self._reserved:
                return pid

    def get(self, pid: str) -> ManagedProgram:
        with self._lock:
            prog = self._programs.get(pid)
            matches = [] if prog is not None or len(pid) < _MIN_PREFIX else [
                p for k, p in self._programs.items() if k.startswith(pid)]
        if prog is not None:
            return prog
        if len(pid) < _MIN_PREFIX:
            raise UsageError(f"program {pid}: id prefix too short (at least {_MIN_PREFIX} "
                             "characters)", hint="list them: ebpm ps")
        if len(matches) > 1:
            raise UsageError(f"program {pid}: the prefix matches {len(matches)} programs",
                             hint="give more of its id (ebpm ps lists them)")
        if not matches:
            raise NotFoundError(f"program {pid}: no such program", hint="list them: ebpm ps")
        return matches[0]

    def list(self) -> list[ManagedProgram]:
        with self._lock:
            return sorted(self._programs.values(), key=lambda p: p.created)

    def swap(self, pid: str, ref: str, *, args: Sequence[str] | None = None,
             allow_unsigned: bool = False) -> ManagedProgram:
        """Move a program to another version: the new one is attached before the old one is
        detached, both publishing into the same stream meanwhile."""
        prog = self.get(pid)
        old = prog.current
        loaded = resolve(ref, allow_unsigned=allow_unsigned)
        gen = self._launch(prog.id, prog.swaps + 1, loaded,
                           tuple(old.args if args is None else args), prog.fanout, prog.persist)
        with self._lock:
            prog.current = gen
            prog.fanout.reopen()  # (the old version's run may have ended, and its streams)
        prog.swaps += 1
        self._check_ended(prog, gen)
        prog.allow_unsigned = allow_unsigned
        self._record(prog)
        old.halt()
        self._unpin(old)
        log.info("swapped %s to %s (%s)", prog.id, ref, loaded.digest[:19])
        return prog

    def stop(self, pid: str) -> ManagedProgram:
        """Detach and unload a program (and remove its pins); its readers' streams end."""
        prog = self.get(pid)
        with self._lock:
            self._programs.pop(prog.id, None)
        prog.current.halt()
        self._unpin(prog.current)
        if prog.persist and self.persistence is not None:
            self.persistence.forget(prog.id)
        prog.stopped = True
        prog.fanout.close(prog.outcome())
        log.info("stopped %s", prog.id)
        return prog

    def shutdown(self) -> None:
        """The agent is exiting: stop every program, except that persisted ones stay loaded
        and attached through their pins (only this process's handles on them close)."""
        for prog in self.list():
            if prog.persist:
                prog.current.halt()
                prog.fanout.close()
                log.info("left %s attached through its pins", prog.id)
                continue
            try:
                self.stop(prog.id)
            except EbpmError as err:
                log.warning("stop %s: %s", prog.id, err)
        self.warm.close()  # nothing stays loaded behind the agent
        if self.persistence is not None:
            self.persistence.tidy()

    def close_streams(self) -> None:
        """End every reader's stream (so that the server can close its connections)."""
        for prog in self.list():
            prog.fanout.close()


def _by_digest(ref: str, digest: str) -> str:
    """REF pinned to DIGEST (the exact package the pins were made from)."""
    from ebpm.oci.reference import parse

    return str(parse(ref).with_digest(digest)) if digest else ref
