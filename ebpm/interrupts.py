"""Ctrl-C while ebpm starts up: remembered, then acted on at a safe point, never raised in the
middle of an import (where Python 3.11 turns it into "Error calling __set_name__", or prints
"Exception ignored" and loses it).

`ebpm.cli.main` holds SIGINT from its first line; a command releases it once its imports are
done (`release`: the remembered Ctrl-C is raised there as KeyboardInterrupt), and `ebpm run`
hands it to its own signal handling (`take`, in `ebpm.run.native.SignalStop`), which stops the
run as a later Ctrl-C would. `restore` puts the caller's handler back.

Two ways to hold it. By a handler (`hold()`): `signal`'s, which remembers a Ctrl-C in a flag;
importing `signal` imports `enum` (~5 ms in a fresh process). In the kernel
(`hold(in_kernel=True)`, `ebpm run`'s): SIGINT and SIGTERM blocked in this thread with libc's
`pthread_sigmask` through ctypes, which a run imports before libbpf's load anyway, so that
nothing imports `signal` on a run's way to its first event (its handlers come after it:
`ebpm.run.native`); a Ctrl-C or SIGTERM then stays pending in the kernel (`pending()` says so),
and is delivered when they are unblocked: by `take` (to the handlers its caller has just
installed), `release` (to the caller's own: KeyboardInterrupt), `restore` (a Ctrl-C dropped,
a SIGTERM's default: the process ends), or `hold()` (to the remembering handler, which holds a
Ctrl-C from then on: the hand-over to click). The block is inherited by the threads started
meanwhile (libbpf's load: it never sees a signal) and by their child processes: the only one a
run starts before its handlers are in place, bpftool making the CO-RE cache's file, is one the
run waits for as it ends anyway.

Once released, a Ctrl-C is Python's KeyboardInterrupt, which a callback cannot raise (a
weakref's, as an import drops its module lock; a `__del__`): Python prints "Exception ignored
in ..." and the command goes on as if no Ctrl-C had come. `watch` (from `ebpm.cli.main`
until `restore`) takes that report and sends the signal to the main thread once more
(`resend`), so that the command still ends "interrupted". From `release` on, a SIGTERM ends
a command the same way, through every `finally`, with exit status 143 (SystemExit), instead
of its default action, which left a build's temporary directories behind.
"""

from __future__ import annotations

import sys
from _thread import get_ident, start_new_thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__all__ = ["hold", "take", "release", "restore", "blocked", "pending", "watch", "resend"]

_state: dict[str, Any] = {"held": False, "previous": None, "pending": False, "blocked": False,
                          "hook": None, "term": None}
_SIGINT = 2  # (Linux, every architecture)
_SIGTERM = 15  # (the same)


def _remember(signum: int, frame: Any) -> None:
    _state["pending"] = True


def blocked() -> bool:
    """Whether SIGINT and SIGTERM are held in the kernel now (`hold(in_kernel=True)`)."""
    return bool(_state["blocked"])


def _sigset() -> Any:
    """An empty sigset_t for libc (1024 bits in glibc and musl; a signal's bit at signum - 1
    of its array of unsigned longs)."""
    import ctypes

    return (ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong))))()


def _block() -> bool:
    """SIGINT and SIGTERM blocked in this thread through libc (ctypes); False when that
    failed."""
    import ctypes
    import os

    mask = _sigset()
    mask[0] = 1 << (_SIGINT - 1) | 1 << (_SIGTERM - 1)
    # SIG_BLOCK: 0, but 1 on alpha, mips and sparc
    how = 1 if os.uname().machine.startswith(("alpha", "mips", "sparc")) else 0
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.pthread_sigmask(how, ctypes.byref(mask), None) == 0)
    except (OSError, AttributeError):
        return False


def pending() -> bool:
    """Whether a SIGINT or SIGTERM waits, held in the kernel, to be delivered (libc's
    sigpending through ctypes: no `signal` import)."""
    if not _state["blocked"]:
        return False
    import ctypes

    waiting = _sigset()
    try:
        if ctypes.CDLL(None).sigpending(ctypes.byref(waiting)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return bool(waiting[0] & (1 << (_SIGINT - 1) | 1 << (_SIGTERM - 1)))


def _unblock() -> None:
    """SIGINT and SIGTERM unblocked: one pending since `hold(in_kernel=True)` reaches the
    handler in place now (Python runs it before `pthread_sigmask` returns)."""
    if _state["blocked"]:
        import signal

        _state["blocked"] = False
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def hold(*, in_kernel: bool = False) -> None:
    """From now until `release`/`restore`, a SIGINT is remembered instead of raised (main
    thread only; elsewhere Python delivers no signal anyway). `in_kernel`: blocked, not
    handled (see the module's docstring). Called while held in the kernel, it goes over to
    the handler (a Ctrl-C pending meanwhile is remembered by it)."""
    if _state["held"] or (in_kernel and _state["blocked"]):
        return
    if in_kernel:
        _state["pending"] = False
        if _block():
            _state["blocked"] = True
            return
    import signal

    _state["pending"] = False  # before the handler is in place: a Ctrl-C from then on counts
    try:
        _state["previous"] = signal.signal(signal.SIGINT, _remember)
    except ValueError:  # not the main thread (no `threading` import for that: `ebpm run`
        _unblock()  # starts libbpf's load before it needs threading)
        return
    _state["held"] = True
    _unblock()


def take() -> bool:
    """Whether a Ctrl-C came while held (and forget it: the caller acts on it). Held in the
    kernel, SIGINT and SIGTERM are unblocked here: one pending since reaches the handlers the
    caller has installed first (`SignalStop.install`), and this returns False."""
    _unblock()
    came = bool(_state["pending"])
    _state["pending"] = False
    return came


def _give_back() -> None:
    if _state["held"]:
        import signal

        signal.signal(signal.SIGINT, _state["previous"] or signal.default_int_handler)
        _state["held"] = False


def restore() -> None:
    """The caller's SIGINT handler back, unblocked (a Ctrl-C still remembered or pending is
    dropped), and its `sys.unraisablehook` (`watch`)."""
    if _state["blocked"]:
        hold()  # the pending one to the remembering handler, then dropped with it
    _give_back()
    _state["pending"] = False
    if _state["term"] is not None:
        import signal

        signal.signal(signal.SIGTERM, _state["term"])
        _state["term"] = None
    if _state["hook"] is not None:
        ours, previous = _state["hook"]
        _state["hook"] = None
        if sys.unraisablehook is ours:
            sys.unraisablehook = previous


def resend(signum: int) -> bool:
    """`signum` sent to this thread once more (a KeyboardInterrupt its handler raised was
    swallowed by a callback): from a new thread, so that the handler runs once the callback
    and the hook that saw it are over (the new thread waits for the GIL), and by the kernel,
    so that a wait in a system call ends as for the first one. False when no thread can start
    (the interpreter is shutting down)."""
    import signal

    try:
        start_new_thread(signal.pthread_kill, (get_ident(), signum))
    except RuntimeError:
        return False
    return True


def watch() -> None:
    """From now until `restore`: a Ctrl-C whose KeyboardInterrupt a callback swallowed is
    raised once more (`resend`) while Python's own handler is SIGINT's, in this thread (where
    signals are handled); a SIGTERM's SystemExit likewise (`_terminated`). Any other report
    goes on to the hook that was in place."""
    if _state["hook"] is not None:
        return
    previous = sys.unraisablehook
    ident = get_ident()

    def swallowed(unraisable: sys.UnraisableHookArgs) -> None:
        signal = sys.modules.get("signal")  # (imported by whoever put a handler in place)
        if signal is not None and get_ident() == ident:
            if (unraisable.exc_type is KeyboardInterrupt
                    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
                    and resend(signal.SIGINT)):
                return
            if (unraisable.exc_type is SystemExit
                    and signal.getsignal(signal.SIGTERM) is _terminated
                    and resend(signal.SIGTERM)):
                return
        previous(unraisable)

    _state["hook"] = (swallowed, previous)
    sys.unraisablehook = swallowed


def release() -> None:
    """The safe point: the caller's handler back, and a Ctrl-C that came meanwhile raised now.
    (In that order: a Ctrl-C between the two reaches the caller's handler or the flag.) Held
    in the kernel: unblocked, a pending Ctrl-C reaches the caller's handler at once. From
    here, a SIGTERM ends the command as Ctrl-C does, through every `finally` (`_terminated`)."""
    _give_back()
    _unblock()
    _end_on_sigterm()
    if take():
        raise KeyboardInterrupt


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _end_on_sigterm() -> None:
    """SIGTERM's default action (the process gone at once: a build's temporary directories,
    a pull's staging left behind) replaced, until `restore`, by SystemExit(143) raised in the
    main thread, which every `finally` and context manager sees on its way out (a child such
    as clang is killed by subprocess.run). A handler someone else put in place stays."""
    import signal

    if _state["term"] is not None or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return
    try:
        _state["term"] = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread
        pass
