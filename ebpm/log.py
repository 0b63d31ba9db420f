"""Loggers that import `logging` only when a record is written.

`ebpm run` must not pay for `logging` (with traceback and string, ~2.5 ms of its start) when
nothing is logged. `get(name)` is a logger whose level checks answer from the verbosity the CLI
set (`setup`) without importing logging; the first record written imports it, set up as the CLI
sets it up (`name: message` on stderr, warnings and above unless -v). Once `logging` is imported
by anyone (the click CLI with -v, the agent, a test's caplog), every call goes straight to it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__all__ = ["DEBUG", "INFO", "WARNING", "Logger", "get", "setup"]

DEBUG, INFO, WARNING = 10, 20, 30  # logging's own values
_FORMAT = "%(name)s: %(message)s"
_state: dict[str, Any] = {"level": WARNING, "deferred": False}


def setup(verbose: int) -> None:
    """-v: INFO, -vv: DEBUG (libbpf's log too); else warnings only. Without -v nothing is
    imported until a warning is written."""
    level = WARNING if verbose == 0 else INFO if verbose == 1 else DEBUG
    _state["level"] = level
    if verbose or "logging" in sys.modules:
        import logging

        logging.basicConfig(level=level, format=_FORMAT, stream=sys.stderr)
    else:
        _state["deferred"] = True


def _logging() -> Any:
    first = "logging" not in sys.modules
    import logging

    if first and _state["deferred"]:
        logging.basicConfig(level=_state["level"], format=_FORMAT, stream=sys.stderr)
    return logging


class Logger:
    """The few methods of `logging.Logger` ebpm uses, without importing logging early."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        if "logging" not in sys.modules:
            return level >= _state["level"]
        return bool(_logging().getLogger(self.name).isEnabledFor(level))

    def log(self, level: int, msg: str, *args: Any) -> None:
        if "logging" not in sys.modules and level < _state["level"]:
            return
        _logging().getLogger(self.name).log(level, msg, *args)

    def debug(self, msg: str, *args: Any) -> None:
        self.log(DEBUG, msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self.log(INFO, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log(WARNING, msg, *args)


def get(name: str) -> Logger:
    return Logger(name)
