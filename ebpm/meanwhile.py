"""Work started in a thread now and waited for later: `result = meanwhile(work)` returns at once;
`result()` waits for `work()` and gives what it returned (or raises what it raised).

For requests that do not depend on each other (a pull's blobs and its signatures): the caller
waits for the longest instead of their sum. A thread whose result nobody waits for (the
caller failed first) ends on its own; it is a daemon, so it never holds the process up.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["meanwhile"]


def meanwhile(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a thread; the function returned waits for its result."""
    import threading

    out: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as err:  # handed to the caller that waits
            failed.append(err)

    thread = threading.Thread(target=run, name="ebpm-meanwhile", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if failed:
            raise failed[0]
        return out[0]

    return result
