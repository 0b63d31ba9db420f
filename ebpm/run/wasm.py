"""The wasm run: a package's own WebAssembly userspace loads its BPF object and prints."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ebpm.errors import UsageError
from ebpm.run.sink import EventSink, RunStart, RunSummary, announce
from ebpm.run.source import LocalPackage

__all__ = ["run_wasm"]



def run_wasm(
    pkg: LocalPackage, *, args: Sequence[str] = (), duration: float | None = None,
    allow_types: Sequence[str] = ("tracing",), stop: threading.Event | None = None,
    sink: EventSink | None = None, stdout: str | Path | None = None,
) -> RunSummary:
    """Run the package's WebAssembly userspace (it loads the BPF object itself).

    A guest that never looks at -EINTR outlives the graceful stop and is interrupted by the
    hard stop: after `duration` (or `stop`) that is the stop the user asked for, so the run's
    status is 0; after a signal it is 128+signal. `stdout`: a file (or FIFO) for the guest's
    output instead of this process's."""
    if pkg.wasm is None:
        raise UsageError(f"{pkg.config.name}: the package has no WebAssembly userspace")
    from ebpm.loader.environment import check_environment, check_requirements
    from ebpm.loader.wasm import run_guest

    check_requirements(pkg.config.requirements, name=pkg.config.name)
    check_environment(need_btf=pkg.config.requirements.btf)
    sink = sink or EventSink()
    announce(sink, RunStart(pkg.config.name, "wasm", duration=duration,
                        allow_types=tuple(allow_types)))
    started = time.monotonic()
    result = run_guest(pkg.wasm, args=list(args), name=pkg.config.name,
                       allow_types=tuple(allow_types), duration=duration, stop=stop,
                       stdout=stdout)
    status = result.exit_code
    if result.hard_stopped and result.stop_reason in ("duration", "requested"):
        status = 0  # the stop the user asked for
    elif result.stop_reason and status == errno.EINTR:
        # upstream guests compare a poll's result with WASI's -EINTR (27), not Linux's (4):
        # they stop when asked, but report it as an error and exit 4
        status = 0
    return RunSummary(
        package=pkg.config.name, events=result.events_delivered, lost=0,
        seconds=time.monotonic() - started, stopped_by=result.stop_reason or "exit",
        attached=(), dropped=(), status=status, hard_stopped=result.hard_stopped,
        mode="wasm")
