"""`freeze()`: what is alive now lives as long as the process, so the garbage collector is told
to leave it out of its passes, including the full pass at exit (`gc.freeze()`). Called at
`ebpm.cli.main`'s first line (what Python's start and the console script imported: `re` with
`enum`, `functools`, `collections`), where the lean entry and the click CLI hand over to a
command, after its imports, and once more where `ebpm.cli.main` returns (whatever the outcome),
for what the command imported and made since.

Figures: a cold `ebpm pull` takes 4-6 ms less from the hand-over's freeze (medians of 15: 73.6
-> 67.5 ms); at the end, a 50-package `install --frozen` exits in 5.9 ms instead of 8.8 (end of
main to process gone, medians of 7) and a cold signed pull takes 54.2 ms of CPU instead of 58.4
(medians of 25). At the first line: the middle generation's collection that the start-up's
imports trigger (after every tenth young one) no longer walks those objects, so `ebpm run`
starts libbpf's load ~0.4 ms sooner (instrumented, medians of 25). Nothing is collected less:
only objects made later are ever garbage. Nothing is left undone: ebpm closes files, temp
directories and BPF objects with `with` blocks, not by a collection at exit (which Python does
not promise anyway), and atexit handlers still run.

`pause()` and `resume()`: the cycle collector is off for the start-up and on again where the
command's work begins. `pause()` is `ebpm.cli.main`'s first line (a freeze, then the collector
off); `resume()` (a freeze, then the collector on) is every hand-over that froze before: a
declared command's invoke (the lean entry's and click's), a click command's loading, and the
end of `ebpm.cli.main` on every path; `ebpm run` defers its own until the run is under way
(attached, its start line printed: `ebpm.cli.run` hands `resume` to its printer). CPython's docs
allow turning the collector off "if you are sure your program does not create reference
cycles": a start-up imports modules, which live as long as the process anyway, parses the
command line, reads a package, loads and attaches it: `ebpm run`'s start-up made 9 young
collections before libbpf's load started, 0.47-0.61 ms in all (gc callbacks, 4 runs), and 10
more between the load's start and the first event, 0.7-0.85 ms (the session's imports and
set-up, on the way to the first event once the CO-RE cache made the load short); now one,
after the start line. The rest of a command (a run's event loop, however
long) runs with the collector on, as before, but for `ebpm pull`, a bounded command that makes
no cycles either (an error's or a retry's traceback aside, bounded by the retries' limit): it
pauses the collector again for its whole work (`ebpm.cli.pull`: ~24 young collections, ~2 ms of
a cold pull's CPU, tests/oci/test_oci_pull_cost.py)."""

from __future__ import annotations

__all__ = ["freeze", "pause", "resume"]

_paused = [False]  # the collector was on, and `pause` turned it off


def freeze() -> None:
    """`gc.freeze()`: see the module's docstring."""
    import gc

    gc.freeze()


def pause() -> None:
    """The start-up begins: `freeze()`, and the collector off until `resume` (if it is on: an
    in-process caller's choice stands)."""
    import gc

    gc.freeze()
    if gc.isenabled():
        gc.disable()
        _paused[0] = True


def resume() -> None:
    """The start-up is over: `freeze()`, and the collector on again if `pause` turned it off."""
    import gc

    gc.freeze()
    if _paused[0]:
        _paused[0] = False
        gc.enable()
