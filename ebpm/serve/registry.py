"""The agent's programs: start by reference, list, read maps, hot-swap and stop.

Each program runs the run use case (`ebpm.run.run_object`) in its own thread: the package is
pulled through the normal verified path, loaded and attached, and every decoded event goes to
the program's `FanOut`, which streams it to any number of readers. A request returns once the
program is attached (or with the loader's error). Hot swap starts the new version, attached
and publishing into the same fan-out, before the old one is stopped.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ebpm.errors import EbpmError, NotFoundError, UsageError
from ebpm.serve.fanout import FanOut

__all__ = ["Loaded", "ProgramRegistry", "ManagedProgram", "Generation", "hist_buckets"]

log = logging.getLogger("ebpm.serve")

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
    if not pulled.object:
        raise NotFoundError(f"{ref}: the package has no BPF object layer")
    signer = ""
    if pulled.verification is not None:
        v = pulled.verification
        signer = ", ".join(s.key_id for s in v.signers)
        if not signer:
            signer = v.status.lower()
    pkg = LocalPackage(pulled.object, pulled.config, pulled.btf, ref, pulled.wasm)
    return Loaded(ref, pulled.digest, signer, pkg)


def _sink(generation: Generation, publish: Callable[[Any], None]) -> Any:
    """The run's EventSink: publishes events, tells the generation it is attached."""
    from ebpm.run.sink import EventSink

    class _Sink(EventSink):
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
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    session: Any = None
    error: BaseException | None = None
    started_at: float = 0.0  # time.time() when attached
    load_seconds: float = 0.0
    attached: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    ended: bool = False
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
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
        from ebpm.run import run_object

        pkg = self.loaded.package
        try:
            run_object(pkg.object, pkg.config, btf=pkg.btf, args=self.args, interval=0,
                       sink=_sink(self, self.fanout.publish), stop=self.stop)
        except BaseException as err:  # reported through status/launch, never lost
            self.error = err
            if self.session is not None:
                log.warning("program %s failed: %s", self.loaded.ref, err)
        finally:
            with self.lock:
                self.ended = True
            self.ready.set()

    def _attached(self, session: Any) -> None:
        self.load_seconds = time.monotonic() - self._begin
        self.started_at = time.time()
        self.attached = tuple(session.attached)
        self.dropped = tuple(f"{d.program}: {d.reason}" for d in session.dropped)
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

    @property
    def kernel_lost(self) -> int:
        session = self.session
        try:
            return int(session.lost) if session is not None else 0
        except Exception:  # the session closed between the check and the read
            return 0

    def halt(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the run and wait until everything is detached."""
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
            "events": self.fanout.published,
            "lost": gen.kernel_lost,
            "readers": self.fanout.readers,
            "reader_lost": self.fanout.lost,
            "load_seconds": round(gen.load_seconds, 6),
            "uptime": round(time.time() - self.created, 3),
            "persist": self.persist,
            "swaps": self.swaps,
        }


def hist_buckets(slots: Sequence[int]) -> list[dict[str, int]]:
    """log2 histogram slots as buckets: slot i counts values in [2^i, 2^(i+1)) (slot 0: 0-1)."""
    out = []
    last = max((i for i, n in enumerate(slots) if n), default=-1)
    for i in range(last + 1):
        low = 0 if i == 0 else 1 << i
        out.append({"low": low, "high": (1 << (i + 1)) - 1, "count": int(slots[i])})
    return out


class ProgramRegistry:
    """Every program of this agent, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._programs: dict[str, ManagedProgram] = {}

    def start(self, ref: str, *, args: Sequence[str] = (), allow_unsigned: bool = False,
              persist: bool = False) -> ManagedProgram:
        """Pull, load and attach REF; the new program once it is attached."""
        loaded = resolve(ref, allow_unsigned=allow_unsigned)
        fanout = FanOut()
        gen = Generation(loaded, tuple(args), fanout)
        gen.launch()
        prog = ManagedProgram(self._new_id(), gen, fanout, persist=persist)
        with self._lock:
            self._programs[prog.id] = prog
        log.info("started %s (%s) as %s", ref, loaded.digest[:19], prog.id)
        return prog

    def _new_id(self) -> str:
        while True:
            pid = secrets.token_hex(6)
            if pid not in self._programs:
                return pid

    def get(self, pid: str) -> ManagedProgram:
        with self._lock:
            prog = self._programs.get(pid)
            if prog is None:
                matches = [p for k, p in self._programs.items() if k.startswith(pid)] if (
                    len(pid) >= 3) else []
                if len(matches) == 1:
                    return matches[0]
        if prog is None:
            raise NotFoundError(f"program {pid}: no such program", hint="list them: ebpm ps")
        return prog

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
        gen = Generation(loaded, tuple(old.args if args is None else args), prog.fanout)
        gen.launch()
        prog.current = gen
        prog.swaps += 1
        old.halt()
        log.info("swapped %s to %s (%s)", prog.id, ref, loaded.digest[:19])
        return prog

    def stop(self, pid: str) -> ManagedProgram:
        """Detach and unload a program; its readers' streams end."""
        prog = self.get(pid)
        with self._lock:
            self._programs.pop(prog.id, None)
        prog.current.halt()
        prog.stopped = True
        prog.fanout.close()
        log.info("stopped %s", prog.id)
        return prog

    def shutdown(self) -> None:
        """Stop every program (the agent is exiting)."""
        for prog in self.list():
            try:
                self.stop(prog.id)
            except EbpmError as err:
                log.warning("stop %s: %s", prog.id, err)

    def close_streams(self) -> None:
        """End every reader's stream (so that the server can close its connections)."""
        for prog in self.list():
            prog.fanout.close()
