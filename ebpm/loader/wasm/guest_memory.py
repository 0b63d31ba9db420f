"""Bounds-checked access to a guest's linear memory, reading every i32 pointer as unsigned."""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["GuestFault", "GuestMemory", "u32"]

_MASK32 = 0xFFFFFFFF


def u32(value: int) -> int:
    """An i32 as wasmtime hands it to Python (signed), read as the guest meant it (unsigned)."""
    return value & _MASK32


class GuestFault(Exception):
    """A guest pointer or size falls outside its memory (the host call then fails: -EFAULT)."""


class GuestMemory:
    """The exported `memory` of one instance.

    The engine is configured with `memory_may_move = False`, so the base address stays put
    and the length only grows; both are re-read whenever the length is not enough (memory can
    grow whenever guest code runs, including the callbacks a host call makes into the guest).
    The common case (an event copied into the same buffer again) makes no call into wasmtime.
    """

    def __init__(self, memory: Any) -> None:
        self._memory = memory
        self._base = 0
        self._length = 0

    def _refresh(self, store: Any) -> None:
        self._length = self._memory.data_len(store)
        ptr = self._memory.data_ptr(store)
        self._base = ctypes.cast(ptr, ctypes.c_void_p).value or 0

    def address(self, store: Any, ptr: int, size: int) -> int:
        """The host address of guest bytes [ptr, ptr+size), checked; valid until guest code runs."""
        ptr &= _MASK32
        size &= _MASK32
        if ptr == 0 or ptr + size > self._length:
            self._refresh(store)
            if ptr == 0 or ptr + size > self._length:
                raise GuestFault(
                    f"guest range {ptr:#x}+{size} outside its {self._length}-byte memory"
                )
        return self._base + ptr

    def read(self, store: Any, ptr: int, size: int) -> bytes:
        """A copy of guest bytes (the host never keeps pointers into guest memory)."""
        return ctypes.string_at(self.address(store, ptr, size), u32(size))

    def write(self, store: Any, ptr: int, data: bytes) -> None:
        ctypes.memmove(self.address(store, ptr, len(data)), data, len(data))

    def cstring(self, store: Any, ptr: int, *, limit: int = 4096) -> str:
        """A NUL-terminated UTF-8 string of at most `limit` bytes; NULL reads as ""."""
        ptr &= _MASK32
        if ptr == 0:
            return ""
        self._refresh(store)
        if ptr >= self._length:
            raise GuestFault(f"guest string at {ptr:#x} outside its {self._length}-byte memory")
        window = ctypes.string_at(self._base + ptr, min(limit + 1, self._length - ptr))
        end = window.find(b"\0")
        if end < 0:
            raise GuestFault(f"guest string at {ptr:#x} not terminated within {limit} bytes")
        try:
            return window[:end].decode()
        except UnicodeDecodeError as err:
            raise GuestFault(f"guest string at {ptr:#x} is not UTF-8") from err
