"""The libbpf.so.1 handle: function prototypes, libbpf's log into `logging`, and the one place
where a return code or NULL pointer of libbpf becomes an exception (`check`, `check_ptr`)."""

from __future__ import annotations

import ctypes
import errno
import os
from _thread import allocate_lock, get_ident  # (not threading: see ebpm.meanwhile)
from ctypes import CFUNCTYPE, c_char_p, c_int, c_void_p

from ebpm import log
from ebpm.errors import LoadError, MissingFeatureError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Prototypes = dict[str, tuple[Any, list[Any]]]  # C function name: (restype, argtypes)

__all__ = [
    "LIBBPF_LOGGER",
    "declare",
    "lib",
    "capture_log",
    "quiet",
    "log_callback",
    "log_read",
    "check",
    "check_ptr",
    "version",
    "num_possible_cpus",
    "prog_type_name",
    "map_type_name",
    "probe_prog_type",
]

LIBBPF_LOGGER = "ebpm.libbpf"
_log = log.get(LIBBPF_LOGGER)


_PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
_P = c_void_p
_PROTOTYPES: Prototypes = {
    "libbpf_set_print": (_P, [_PRINT_FN]),
    "libbpf_version_string": (c_char_p, []),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_bpf_prog_type_str": (c_char_p, [c_int]),
    "libbpf_bpf_map_type_str": (c_char_p, [c_int]),
    "libbpf_probe_bpf_prog_type": (c_int, [c_int, _P]),
}

_lock = allocate_lock()
_lib: ctypes.CDLL | None = None
_libc: ctypes.CDLL | None = None  # vasprintf and free, for the log callback (made on first use)
_print_cb: Any = None  # the log callback (made on first need); alive for the life of the process
_silenced = [0]  # `quiet` blocks open
_captures: dict[int, list[str]] = {}  # thread ident: where its libbpf log lines go

_LEVELS = (log.WARNING, log.INFO, log.DEBUG)  # LIBBPF_WARN, _INFO, _DEBUG
_PROBE_SUPPORTED = 1  # libbpf_probe_bpf_prog_type: 1 supported, 0 not, <0 error


class _Library(ctypes.CDLL):
    """libbpf.so.1, whose functions take their declared prototypes when first looked up (a
    run calls ~15 of the ~60 declared before libbpf's load starts: ~3 us each)."""

    def __getitem__(self, name: Any) -> Any:
        fn = super().__getitem__(name)
        prototype = _PROTOTYPES.get(name)
        if prototype is not None:
            fn.restype, fn.argtypes = prototype
        return fn


def declare(prototypes: Prototypes) -> None:
    """Each module of this package declares the C functions it calls (at import, before it
    calls them)."""
    with _lock:
        _PROTOTYPES.update(prototypes)
        if _lib is not None:  # (a function already looked up is in the handle's __dict__)
            for name in prototypes.keys() & vars(_lib).keys():
                getattr(_lib, name).restype, getattr(_lib, name).argtypes = prototypes[name]


def _on_print(level: int, fmt: bytes, args: int) -> int:
    global _libc
    lvl = _LEVELS[level] if 0 <= level < len(_LEVELS) else log.DEBUG
    sink = _captures.get(get_ident())
    if sink is None and not _log.isEnabledFor(lvl):
        return 0
    if _libc is None:  # (two threads may both make it: the same handle)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.vasprintf.argtypes = [ctypes.POINTER(c_void_p), c_char_p, c_void_p]
        libc.vasprintf.restype = c_int
        libc.free.argtypes = [c_void_p]
        libc.free.restype = None
        _libc = libc
    out = ctypes.c_void_p()  # vasprintf allocates what the message needs (a verifier log: MBs)
    n = _libc.vasprintf(ctypes.byref(out), fmt, ctypes.c_void_p(args))
    if n < 0 or not out.value:
        return 0
    try:
        text = ctypes.string_at(out.value, n).decode(errors="replace").rstrip("\n")
    finally:
        _libc.free(out)
    if sink is not None:
        sink.append(text)
        lvl = log.DEBUG  # the caller turns captured text into an error; keep stderr quiet
    _log.log(lvl, "%s", text)
    return 0


def log_callback() -> Any:
    """The callback that routes libbpf's log to logging, made now if not yet (its ctypes
    closure costs ~0.15 ms: `ebpm run` makes it while libbpf loads, quietly)."""
    global _print_cb
    if _print_cb is None:
        _print_cb = _PRINT_FN(_on_print)
    return _print_cb


def lib() -> ctypes.CDLL:
    """The loaded libbpf.so.1 with prototypes set and its log routed to logging (unless a
    `quiet` block is open)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            try:
                handle = _Library("libbpf.so.1", use_errno=True)
            except OSError as err:
                raise MissingFeatureError(
                    "libbpf", hint="install libbpf1 (apt install libbpf1)", detail=str(err)
                ) from err
            handle.libbpf_set_print(_PRINT_FN() if _silenced[0] else log_callback())
            _lib = handle
    return _lib


class quiet:  # noqa: N801 - used like a function: `with quiet():`
    """libbpf prints nothing while the block runs, process-wide: no log callback, which
    would need the GIL in a thread where libbpf works (a load logs ~100 debug lines). Only
    when nobody reads them: not under -vv; the caller must redo a failed call to get its log.
    Nothing else may call libbpf meanwhile (its log would be lost). The first call into
    libbpf may be in the block: the log callback is then made only when it is needed (see
    `log_callback`)."""

    def __enter__(self) -> None:
        _silenced[0] += 1
        lib().libbpf_set_print(_PRINT_FN())  # NULL: print nothing

    def __exit__(self, *exc: object) -> None:
        _silenced[0] -= 1
        if not _silenced[0]:
            lib().libbpf_set_print(log_callback())


def log_read() -> bool:
    """Whether libbpf's debug log is wanted (-vv)."""
    return _log.isEnabledFor(log.DEBUG)


class capture_log:  # noqa: N801 - used like a function: `with capture_log() as lines:`
    """Collect libbpf's log lines (in this thread) while the block runs."""

    def __enter__(self) -> list[str]:
        self._thread = get_ident()
        self._prev = _captures.get(self._thread)
        self.lines: list[str] = []
        _captures[self._thread] = self.lines
        return self.lines

    def __exit__(self, *exc: object) -> None:
        if self._prev is None:
            _captures.pop(self._thread, None)
        else:
            _captures[self._thread] = self._prev
            self._prev.extend(self.lines)


def _error(what: str, err: int, log: list[str] | None = None) -> LoadError:
    text = "\n".join(log or [])
    return LoadError(f"{what}: {os.strerror(err)}", verifier_log=text, errno=err)


def check(ret: int, what: str, log: list[str] | None = None) -> int:
    """The one place an int return code of libbpf becomes an exception."""
    if ret < 0:
        raise _error(what, -ret, log)
    return ret


def check_ptr(ptr: int | None, what: str, log: list[str] | None = None) -> int:
    """The one place a NULL pointer return of libbpf becomes an exception (errno set)."""
    if not ptr:
        err = ctypes.get_errno() or errno.EINVAL
        raise _error(what, err, log)
    return ptr


def version() -> str:
    return (lib().libbpf_version_string() or b"").decode()


def num_possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "number of possible CPUs")


def prog_type_name(prog_type: int) -> str:
    return (lib().libbpf_bpf_prog_type_str(prog_type) or b"unknown").decode()


def map_type_name(map_type: int) -> str:
    return (lib().libbpf_bpf_map_type_str(map_type) or b"unknown").decode()


def probe_prog_type(prog_type: int) -> bool:
    """Whether the kernel can load a trivial program of this type."""
    return bool(lib().libbpf_probe_bpf_prog_type(prog_type, None) == _PROBE_SUPPORTED)
