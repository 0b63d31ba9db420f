"""Run one wasm-bpf guest on wasmtime: sandboxed, stoppable, and leaving nothing behind.

The steps: compile (or take from the cache) -> a Store with a memory cap and an epoch
deadline -> a Linker with WASI (args and stdio only) and the wasm_bpf imports -> instantiate
-> call `_start`. A stop (SIGINT/SIGTERM, the duration, or the caller's event) is graceful
first: every poll returns -EINTR, so the guest leaves its loop and flushes its output. A guest
that does not stop within `grace` seconds is interrupted by the engine's epoch (the hard stop).
Every BPF object, link and buffer the guest made is released on every exit path.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from wasmtime import ExitTrap, Func, Linker, Store, Trap, WasiConfig, WasmtimeError
from wasmtime import _ffi as ffi

from ebpm import log
from ebpm.errors import SandboxViolationError, WasmError
from ebpm.loader.wasm.abi import WasmBpfAbi
from ebpm.loader.wasm.engine import compile_module, engine
from ebpm.loader.wasm.objects import GuestObjects, Timings
from ebpm.loader.wasm.policy import TRACING, ProgramPolicy
from ebpm.record import field, record

__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_GRACE", "RunResult", "run_guest", "run_module"]

_log = log.get("ebpm.wasm")

DEFAULT_MEMORY_LIMIT = 256 << 20  # bytes of linear memory a guest may have
DEFAULT_GRACE = 2.0  # seconds between a stop request and the hard stop
_TICK = 0.05  # seconds between epoch ticks (how soon a spinning guest is looked at)
EXIT_DURATION = 124  # as timeout(1), when the hard stop ended a run at its duration
_EXIT_SIGNAL_BASE = 128  # a shell's exit status for "killed by signal N": 128 + N
_UPDATE_DEADLINE_CONTINUE = 0  # wasmtime_update_deadline_kind_t: keep running, new deadline

# Guest output goes to this process's stdout/stderr or to files. (wasmtime-py's custom
# output callbacks run on a tokio thread that panics at interpreter exit: not used.)
Output = str | Path

_DEADLINE_FN = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)


@record
class RunResult:
    """How a guest run ended, with the figures the benchmark reports."""

    exit_code: int
    stop_reason: str = ""  # "", "signal", "duration", "requested"
    hard_stopped: bool = False
    events_delivered: int = 0
    last_event_at: float = 0.0  # time.perf_counter() of the last delivery (0: none)
    compile_seconds: float = 0.0
    instantiate_seconds: float = 0.0
    timings: Timings = field(default_factory=Timings)


class _Stopper:
    """The stop state of one run: requested when, why, and whether the hard stop is due."""

    def __init__(self, duration: float | None, grace: float, event: threading.Event | None):
        self.deadline = None if duration is None else time.monotonic() + duration
        self.grace = grace
        self.event = event
        self.requested_at: float | None = None
        self.reason = ""
        self.signum = 0
        self.hard = False

    def request(self, reason: str, *, signum: int = 0, now: bool = False) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()
            self.reason = reason
            self.signum = signum
        if now:
            self.requested_at = time.monotonic() - self.grace

    def should_stop(self) -> bool:
        if self.requested_at is None:
            if self.event is not None and self.event.is_set():
                self.request("requested")
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.request("duration")
        return self.requested_at is not None

    def hard_due(self) -> bool:
        return self.should_stop() and time.monotonic() - (self.requested_at or 0) >= self.grace

    def exit_code(self) -> int:
        if self.reason == "signal":
            return _EXIT_SIGNAL_BASE + self.signum
        if self.reason == "duration":
            return EXIT_DURATION
        return _EXIT_SIGNAL_BASE + signal.SIGTERM


def run_module(
    wasm: bytes,
    *,
    args: Sequence[str] = (),
    name: str = "guest",
    allow_types: Iterable[str] = (TRACING,),
    duration: float | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    grace: float = DEFAULT_GRACE,
    stdout: Output | None = None,
    stderr: Output | None = None,
    handle_signals: bool = True,
    stop: threading.Event | None = None,
    cache: Path | None = None,
    use_cache: bool = True,
) -> int:
    """Run a wasm-bpf guest to its end and return its exit status (see `run_guest`)."""
    return run_guest(
        wasm, args=args, name=name, allow_types=allow_types, duration=duration,
        memory_limit=memory_limit, grace=grace, stdout=stdout, stderr=stderr,
        handle_signals=handle_signals, stop=stop, cache=cache, use_cache=use_cache,
    ).exit_code


def run_guest(
    wasm: bytes,
    *,
    args: Sequence[str] = (),
    name: str = "guest",
    allow_types: Iterable[str] = (TRACING,),
    duration: float | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    grace: float = DEFAULT_GRACE,
    stdout: Output | None = None,
    stderr: Output | None = None,
    handle_signals: bool = True,
    stop: threading.Event | None = None,
    cache: Path | None = None,
    use_cache: bool = True,
) -> RunResult:
    """Run a wasm-bpf guest (a WASI command) with `args` as its argv[1:].

    `allow_types`: program categories beyond tracing it may load (xdp, tc, cgroup, other,
    all). `duration`: seconds before a graceful stop. `stdout`/`stderr`: files for the guest's
    output (default: this process's own). `stop`: set it to stop the run
    gracefully from another thread. SIGINT/SIGTERM stop it gracefully (a second one at once)
    when called from the main thread with `handle_signals`.

    Raises WasmError when the module is invalid or traps, SandboxViolationError when it
    failed after the policy refused one of its programs or it needs more memory than allowed.
    """
    policy = ProgramPolicy.of(allow_types)
    stopper = _Stopper(duration, grace, stop)
    t0 = time.perf_counter()
    module = compile_module(wasm, cache=cache, use_cache=use_cache)
    t1 = time.perf_counter()

    eng = engine()
    store = Store(eng)
    store.set_limits(memory_size=memory_limit)
    wasi = WasiConfig()
    wasi.argv = [name, *args]
    wasi.inherit_stdin()
    if stdout is None:
        wasi.inherit_stdout()
    else:
        wasi.stdout_file = str(stdout)
    if stderr is None:
        wasi.inherit_stderr()
    else:
        wasi.stderr_file = str(stderr)
    store.set_wasi(wasi)

    def on_deadline(_ctx: Any, _env: Any, delta: Any, kind: Any) -> int:
        # Runs on this thread inside guest code: Python signal handlers get their turn here.
        if stopper.hard_due():
            stopper.hard = True
            err = ffi.wasmtime_error_new(b"ebpm: guest did not stop in time (hard stop)")
            return ctypes.cast(err, ctypes.c_void_p).value or 0
        delta[0] = 1
        kind[0] = _UPDATE_DEADLINE_CONTINUE
        return 0

    deadline_cb = _DEADLINE_FN(on_deadline)
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), deadline_cb, None, _NO_FINALIZER)
    store.set_epoch_deadline(1)

    objects = GuestObjects(policy)
    abi = WasmBpfAbi(objects, stopper.should_stop)
    linker = Linker(eng)
    linker.define_wasi()
    abi.define(linker)

    ticking = threading.Event()
    ticker = threading.Thread(
        target=_tick, args=(eng, ticking), name=f"ebpm-wasm-epoch-{name}", daemon=True
    )
    restore = _install_signals(stopper) if handle_signals else {}
    ticker.start()
    code = 0
    t2 = t3 = time.perf_counter()
    try:
        try:
            instance = linker.instantiate(store, module)
        except WasmtimeError as err:
            raise _instantiate_error(name, err, memory_limit) from err
        t3 = time.perf_counter()
        start = instance.exports(store).get("_start")
        if not isinstance(start, Func):
            raise WasmError(
                f"wasm guest {name}: exports no _start",
                hint="build it as a WASI command (a C program with main)",
            )
        try:
            start(store)
        except ExitTrap as exit_:
            code = exit_.code
        except (WasmtimeError, Trap) as err:  # a trap in a callback arrives as itself
            if not stopper.hard:
                raise WasmError(
                    f"wasm guest {name}: trapped: {_first_line(err)}",
                    hint="the guest crashed; its BPF objects were closed",
                ) from err
            code = stopper.exit_code()
            _log.info("wasm guest %s: hard stop after %.1fs of grace", name, grace)
    finally:
        ticking.set()
        objects.close_all()
        ticker.join()
        _restore_signals(restore)
        ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), _NO_DEADLINE_FN, None, _NO_FINALIZER
        )
        # freed now, with the files its WASI context opened (the guest's stdout: a reader of
        # that fifo sees the end at once), not when the last reference goes: a trap's
        # traceback holds this frame, and with it the store, for as long as it is handled
        store.close()
    if code != 0 and objects.refusals:
        raise SandboxViolationError(
            f"wasm guest {name}: {objects.refusals[0]}",
            hint="allow the category with --allow (xdp, tc, cgroup, other or all) if you trust "
            "this package",
            what="program type",
        )
    return RunResult(
        exit_code=code,
        stop_reason=stopper.reason,
        hard_stopped=stopper.hard,
        events_delivered=abi.delivered,
        last_event_at=abi.last_delivery,
        compile_seconds=t1 - t0,
        instantiate_seconds=t3 - t2,
        timings=objects.timings,
    )


_NO_DEADLINE_FN = _DEADLINE_FN()  # NULL: drop our callback before the closure goes away
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()


def _tick(eng: Any, done: threading.Event) -> None:
    while not done.wait(_TICK):
        eng.increment_epoch()


def _install_signals(stopper: _Stopper) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum: int, _frame: Any) -> None:
        again = stopper.requested_at is not None and stopper.reason == "signal"
        stopper.request("signal", signum=signum, now=again)

    saved: dict[int, Any] = {s: signal.signal(s, on_signal) for s in (signal.SIGINT,
                                                                     signal.SIGTERM)}
    from ebpm import interrupts

    # `ebpm run` holds both in the kernel until here (ebpm.interrupts, ebpm.cli.run): one
    # that came meanwhile reaches `on_signal` now
    if interrupts.take():
        on_signal(signal.SIGINT, None)
    return saved


def _restore_signals(saved: dict[int, Any]) -> None:
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _instantiate_error(name: str, err: WasmtimeError, memory_limit: int) -> WasmError:
    text = str(err)
    if "memory" in text and ("limit" in text or "exceed" in text or "minimum" in text):
        return SandboxViolationError(
            f"wasm guest {name}: needs more than its {memory_limit >> 20} MiB memory cap: "
            f"{_first_line(err)}",
            hint="raise the cap (memory_limit) if you trust this package",
            what="memory",
        )
    if "unknown import" in text:
        return WasmError(
            f"wasm guest {name}: imports what this host does not provide: {_first_line(err)}",
            hint="ebpm provides WASI (args, stdio) and the wasm_bpf imports of wasm-bpf",
        )
    return WasmError(f"wasm guest {name}: cannot instantiate: {_first_line(err)}")


