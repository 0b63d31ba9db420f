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

    The host address is recomputed on every access: memory can grow, and move, whenever guest
    code runs (including the callbacks a host call makes into the guest).
    """

    def __init__(self, memory: Any) -> None:
        self._memory = memory

    def _base(self, store: Any) -> tuple[int, int]:
        ptr = self._memory.data_ptr(store)
        return ctypes.cast(ptr, ctypes.c_void_p).value or 0, self._memory.data_len(store)

    def address(self, store: Any, ptr: int, size: int) -> int:
        """The host address of guest bytes [ptr, ptr+size), checked; valid until guest code runs."""
        ptr, size = u32(ptr), u32(size)
        base, length = self._base(store)
        if ptr == 0 or ptr + size > length:
            raise GuestFault(f"guest range {ptr:#x}+{size} outside its {length}-byte memory")
        return base + ptr

    def read(self, store: Any, ptr: int, size: int) -> bytes:
        """A copy of guest bytes (the host never keeps pointers into guest memory)."""
        return ctypes.string_at(self.address(store, ptr, size), u32(size))

    def write(self, store: Any, ptr: int, data: bytes) -> None:
        ctypes.memmove(self.address(store, ptr, len(data)), data, len(data))

    def cstring(self, store: Any, ptr: int, *, limit: int = 4096) -> str:
        """A NUL-terminated UTF-8 string of at most `limit` bytes; NULL reads as ""."""
        ptr = u32(ptr)
        if ptr == 0:
            return ""
        base, length = self._base(store)
        if ptr >= length:
            raise GuestFault(f"guest string at {ptr:#x} outside its {length}-byte memory")
        window = ctypes.string_at(base + ptr, min(limit + 1, length - ptr))
        end = window.find(b"\0")
        if end < 0:
            raise GuestFault(f"guest string at {ptr:#x} not terminated within {limit} bytes")
        try:
            return window[:end].decode()
        except UnicodeDecodeError as err:
            raise GuestFault(f"guest string at {ptr:#x} is not UTF-8") from err
