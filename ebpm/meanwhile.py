"""Work started in a thread now and waited for later: `result = meanwhile(work)` returns at once;
`result()` waits for `work()` and gives what it returned (or raises what it raised).

For requests that do not depend on each other (a pull's blobs and its signatures): the caller
waits for the longest instead of their sum. A thread whose result nobody waits for (the
caller failed first) ends on its own; it is a daemon, so it never holds the process up.

`each(work, items, jobs)`: `work(item)` for every item, `jobs` at a time, the results in order
(an install's packages). No `concurrent.futures`: it would bring in logging and a future per
item for what a few threads taking the next item in turn do.

Inside an `each` worker, `meanwhile(work)` runs the work at once, in the worker: the pool's
width is the run's concurrency, and nested threads would only add thread starts and GIL hand-
offs (as joblib runs nested parallel loops in turn). A 50-package install --frozen keeps 15-20
requests in flight with its workers alone, and spent 8-14% less CPU without the 2 threads per
package its pulls started (the run is bound by the CPU of 2 cores shared with the registry).
"""

from __future__ import annotations

# _thread, not threading: `ebpm run` starts libbpf's load through here before anything needs
# threading (its import, ~0.6 ms, then runs while the kernel works). Such a thread is a daemon
# (it never holds the process up at exit); nothing here needs a name or threading's registry.
from _thread import allocate_lock, get_ident, start_new_thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    T = TypeVar("T")
    R = TypeVar("R")

__all__ = ["meanwhile", "each"]

_WORKERS: set[int] = set()  # idents of the threads running an each() worker


def meanwhile(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a thread (in an `each` worker: run it now); the function returned waits
    for its result."""
    if _WORKERS and get_ident() in _WORKERS:
        return _done(work)
    out: list[T] = []
    failed: list[BaseException] = []
    started, finished = allocate_lock(), allocate_lock()
    started.acquire()
    finished.acquire()

    def run() -> None:
        started.release()
        try:
            out.append(work())
        except BaseException as err:  # handed to the caller that waits
            failed.append(err)
        finally:
            finished.release()

    start_new_thread(run, ())
    started.acquire()  # as threading's start(): the thread runs before the caller goes on

    def result() -> T:
        with finished:  # (held until `work` is over; any number of waits)
            pass
        if failed:
            raise failed[0]
        return out[0]

    return result


def each(work: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`work(item)` for every item, in at most `jobs` threads at once; the results in the
    items' order. Once one fails (or the caller is interrupted) no further item starts; the
    running ones finish, then the failure of the earliest item is raised."""
    if jobs <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    results: list[R | None] = [None] * len(items)
    failed: dict[int, BaseException] = {}
    stop: list[bool] = []
    pending = iter(range(len(items)))  # shared: each next() hands one index to one thread

    def worker() -> None:
        me = get_ident()
        _WORKERS.add(me)
        try:
            for i in pending:
                if failed or stop:
                    return
                try:
                    results[i] = work(items[i])
                except BaseException as err:
                    failed[i] = err
                    return
        finally:
            _WORKERS.discard(me)

    waits = [meanwhile(worker) for _ in range(min(jobs, len(items)))]
    try:
        for wait in waits:
            wait()
    finally:
        stop.append(True)  # interrupted: the running items finish, no new one starts
        for wait in waits:
            wait()
    if failed:
        raise failed[min(failed)]
    return results  # type: ignore[return-value]


def _done(work: Callable[[], T]) -> Callable[[], T]:
    """`work` run now; the function returned gives its result (or raises its error)."""
    try:
        value = work()
    except BaseException as err:
        failed = err

        def fail() -> T:
            raise failed

        return fail
    return lambda: value
