"""Ctrl-C while ebpm starts up: remembered, then acted on at a safe point, never raised in the
middle of an import (where Python 3.11 turns it into "Error calling __set_name__", or prints
"Exception ignored" and loses it).

`ebpm.cli.main` holds SIGINT from its first line; a command releases it once its imports are
done (`release`: the remembered Ctrl-C is raised there as KeyboardInterrupt), and `ebpm run`
hands it to its own signal handling (`take`, in `ebpm.run.native.SignalStop`), which stops the
run as a later Ctrl-C would. `restore` puts the caller's handler back.
"""

from __future__ import annotations

import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__all__ = ["hold", "take", "release", "restore"]

_state: dict[str, Any] = {"held": False, "previous": None, "pending": False}


def _remember(signum: int, frame: Any) -> None:
    _state["pending"] = True


def hold() -> None:
    """From now until `release`/`restore`, a SIGINT is remembered instead of raised (main
    thread only; elsewhere Python delivers no signal anyway)."""
    if _state["held"]:
        return
    _state["pending"] = False  # before the handler is in place: a Ctrl-C from then on counts
    try:
        _state["previous"] = signal.signal(signal.SIGINT, _remember)
    except ValueError:  # not the main thread (no `threading` import for that: `ebpm run`
        return  # starts libbpf's load before it needs threading)
    _state["held"] = True


def take() -> bool:
    """Whether a Ctrl-C came while held (and forget it: the caller acts on it)."""
    pending = bool(_state["pending"])
    _state["pending"] = False
    return pending


def _give_back() -> None:
    if _state["held"]:
        signal.signal(signal.SIGINT, _state["previous"] or signal.default_int_handler)
        _state["held"] = False


def restore() -> None:
    """The caller's SIGINT handler back (a Ctrl-C still remembered is dropped)."""
    _give_back()
    _state["pending"] = False


def release() -> None:
    """The safe point: the caller's handler back, and a Ctrl-C that came meanwhile raised now.
    (In that order: a Ctrl-C between the two reaches the caller's handler or the flag.)"""
    _give_back()
    if take():
        raise KeyboardInterrupt
