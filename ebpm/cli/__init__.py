"""The face of ebpm: `main()` parses the command line and renders results and errors."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ebpm` console script; the only place that catches the unexpected."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # fast path: no click import for the most common probe
        from ebpm import __version__

        print(f"ebpm {__version__}")
        return 0

    try:  # (a Ctrl-C before the hold below is in place: Python's KeyboardInterrupt)
        from ebpm import interrupts
        from ebpm.cli.startup import pause, resume
    except KeyboardInterrupt:
        return _interrupted()

    pause()  # frozen what Python and the console script made; no collector until the work
    try:
        # a Ctrl-C during the imports below waits for a safe point: held in the kernel for
        # `ebpm run` (through ctypes, which it imports before libbpf's load anyway: no
        # `signal` and `enum` before the load), by a handler for the rest; from then on, one
        # that a callback swallowed is raised once more (ebpm.interrupts)
        interrupts.hold(in_kernel=_runs(args))
        interrupts.watch()
        from ebpm.cli.lean import main as lean_main

        code = lean_main(args)  # the hot commands, without click (None: not for it)
        if code is not None:
            return code
        interrupts.hold()  # (held by the handler from here: the hand-over to click)
        from ebpm.cli.app import run

        return run(args)
    except KeyboardInterrupt:  # while starting up, or as the command ended: nothing to undo
        return _interrupted()
    finally:
        interrupts.restore()
        resume()  # the command is over: frozen, no collection at exit (see ebpm.cli.startup)


def _interrupted() -> int:
    print("interrupted", file=sys.stderr)
    return 130


def _runs(args: list[str]) -> bool:
    """Whether `args` are `ebpm [ROOT OPTIONS] run ...` that loads here: the root's options
    take no value (-v, --offline), so the first argument that is not one names the command;
    with --agent or --detach (before `--`) the agent loads it, and the handler holds Ctrl-C
    (its `signal` the attached run's own) without ctypes, which nothing else there needs."""
    if next((a for a in args if not a.startswith("-")), None) != "run":
        return False
    for arg in args:
        if arg == "--":
            break
        if arg == "--detach" or arg == "--agent" or arg.startswith("--agent="):
            return False
    return True
