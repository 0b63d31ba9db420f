"""Event buffers: consumers of BPF ring buffers and perf event arrays, polled for records that
reach a Python callback (an exception it raises surfaces from `poll`)."""

from __future__ import annotations

import ctypes
import errno
from ctypes import CFUNCTYPE, c_int, c_size_t, c_uint32, c_uint64, c_void_p

from ebpm.errors import LoadError
from ebpm.loader.libbpf.library import check, check_ptr, declare, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Self

__all__ = ["RingBuffer", "PerfBuffer"]

_RB_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
_PB_SAMPLE_FN = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_uint32)
_PB_LOST_FN = CFUNCTYPE(None, c_void_p, c_int, c_uint64)

_P = c_void_p
declare({
    "ring_buffer__new": (_P, [c_int, _RB_SAMPLE_FN, _P, _P]),
    "ring_buffer__add": (c_int, [_P, c_int, _RB_SAMPLE_FN, _P]),
    "ring_buffer__poll": (c_int, [_P, c_int]),
    "ring_buffer__consume": (c_int, [_P]),
    "ring_buffer__epoll_fd": (c_int, [_P]),
    "ring_buffer__free": (None, [_P]),
    "perf_buffer__new": (_P, [c_int, c_size_t, _PB_SAMPLE_FN, _PB_LOST_FN, _P, _P]),
    "perf_buffer__poll": (c_int, [_P, c_int]),
    "perf_buffer__consume": (c_int, [_P]),
    "perf_buffer__epoll_fd": (c_int, [_P]),
    "perf_buffer__buffer_cnt": (c_size_t, [_P]),
    "perf_buffer__buffer_fd": (c_int, [_P, c_size_t]),
    "perf_buffer__free": (None, [_P]),
})


class _EventBuffer:
    """What ring and perf buffer consumers share: the libbpf handle, poll and consume (an
    exception raised by a callback surfaces here; -EINTR counts as no records), and free."""

    _prefix = ""  # libbpf function prefix: "ring_buffer__" or "perf_buffer__"
    _label = ""
    _ptr: int | None = None
    _error: BaseException | None = None

    def _fn(self, name: str) -> Any:
        return getattr(lib(), self._prefix + name)

    def _handle(self) -> int:
        if self._ptr is None:
            raise LoadError(f"{self._label} buffer: already freed")
        return self._ptr

    def _raise_pending(self, ret: int, what: str) -> int:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if ret == -errno.EINTR:
            return 0
        return check(ret, what)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms for records and consume them; returns how many."""
        ret = self._fn("poll")(self._handle(), timeout_ms)
        return self._raise_pending(ret, f"{self._label} poll")

    def consume(self) -> int:
        return self._raise_pending(self._fn("consume")(self._handle()), f"{self._label} consume")

    @property
    def epoll_fd(self) -> int:
        return int(self._fn("epoll_fd")(self._handle()))

    def free(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._fn("free")(ptr)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


class RingBuffer(_EventBuffer):
    """A BPF ring buffer consumer: `callback(data: bytes)` runs for each record during poll."""

    _prefix, _label = "ring_buffer__", "ring"

    def __init__(self, map_fd: int, callback: Callable[[bytes], None]) -> None:
        self._cbs: list[Any] = []
        self._error = None
        cb = self._wrap(callback)
        self._ptr = check_ptr(
            lib().ring_buffer__new(map_fd, cb, None, None), f"ring buffer (map fd {map_fd})"
        )

    def _wrap(self, callback: Callable[[bytes], None]) -> Any:
        string_at = ctypes.string_at

        def sample(_ctx: int, data: int, size: int) -> int:
            try:
                callback(string_at(data, size))
            except BaseException as err:  # surfaced by poll(); returning <0 stops the poll
                self._error = err
                return -errno.ECANCELED
            return 0

        cb = _RB_SAMPLE_FN(sample)
        self._cbs.append(cb)
        return cb

    def add(self, map_fd: int, callback: Callable[[bytes], None]) -> None:
        """Consume another ring buffer map through the same poll."""
        check(
            lib().ring_buffer__add(self._handle(), map_fd, self._wrap(callback), None),
            f"ring buffer: add map fd {map_fd}",
        )

    def free(self) -> None:
        super().free()
        self._cbs.clear()


class PerfBuffer(_EventBuffer):
    """A perf event array consumer: `callback(cpu, data)` per record, `lost(cpu, count)`."""

    _prefix, _label = "perf_buffer__", "perf"

    def __init__(
        self, map_fd: int, callback: Callable[[int, bytes], None], *,
        lost: Callable[[int, int], None] | None = None, page_count: int = 64,
    ) -> None:
        self._error = None
        self.lost_total = 0
        string_at = ctypes.string_at

        def sample(_ctx: int, cpu: int, data: int, size: int) -> None:
            if self._error is not None:
                return
            try:
                callback(cpu, string_at(data, size))
            except BaseException as err:
                self._error = err

        def on_lost(_ctx: int, cpu: int, count: int) -> None:
            self.lost_total += count
            if lost is not None:
                try:
                    lost(cpu, count)
                except BaseException as err:
                    self._error = err

        self._cbs = (_PB_SAMPLE_FN(sample), _PB_LOST_FN(on_lost))
        self._ptr = check_ptr(
            lib().perf_buffer__new(map_fd, page_count, self._cbs[0], self._cbs[1], None, None),
            f"perf buffer (map fd {map_fd})",
        )

    def cpu_fds(self) -> list[int]:
        """The perf event of each CPU libbpf opened (each with a ring of `page_count` pages
        after a header page, mapped by libbpf); CPUs it left out (offline) are skipped."""
        handle = self._handle()
        count = lib().perf_buffer__buffer_cnt(handle)
        fds = (lib().perf_buffer__buffer_fd(handle, i) for i in range(count))
        return [fd for fd in fds if fd >= 0]
