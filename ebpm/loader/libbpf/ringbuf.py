"""A BPF ring buffer read straight from its memory, as cilium/ebpf's ringbuf reader does: the
consumer page mapped read-write, the producer page and the data area (mapped twice by the
kernel, so a record that wraps is contiguous) read-only; records are decoded a batch at a time.

Each record starts with an 8-byte header: u32 length with the busy (bit 31) and discard (bit
30) flags, u32 page offset; records are 8-byte aligned. The kernel publishes a header after
its record (store-release); this reader relies on loads not being reordered with loads, which
x86-64 guarantees (`supported()`), elsewhere use libbpf's RingBuffer. Both positions are read
and written as whole 8-byte words (a memoryview of format "Q"): the kernel reads the consumer
position while this reader writes it, and struct.pack_into writes a byte at a time, so the
kernel saw positions half-written (up to 16 MiB behind, the ring full) and dropped records.
"""

from __future__ import annotations

import mmap
import os
import select
import struct

from ebpm.errors import LoadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Self

__all__ = ["MappedBuffer", "MappedRing", "supported"]

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HEADER = 8
_U32 = struct.Struct("<I")


def supported() -> bool:
    """True where plain loads from the mapping are ordered (x86-64)."""
    return os.uname().machine == "x86_64"


def _ring_size(map_fd: int) -> int:
    """max_entries of the ring buffer map behind `map_fd` (from /proc/self/fdinfo)."""
    try:
        with open(f"/proc/self/fdinfo/{map_fd}") as fh:
            for line in fh:
                if line.startswith("max_entries:"):
                    return int(line.split()[1])
    except OSError as err:
        raise LoadError(f"ring buffer (map fd {map_fd}): {err.strerror}") from err
    raise LoadError(f"ring buffer (map fd {map_fd}): not a BPF map")


class MappedBuffer:
    """What the memory-mapped readers share (this module's ring buffer, `perfbuf`'s perf
    buffer): `fd`, which is readable when records arrive, `wait`, and `close` in a `with`."""

    fd: int

    def _watch(self, fd: int) -> None:
        self.fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def wait(self, timeout_ms: int) -> bool:
        """Sleep until the kernel signals new records (or the timeout); True if it did."""
        try:
            return bool(self._poll.poll(timeout_ms))
        except InterruptedError:
            return False

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MappedRing(MappedBuffer):
    """A ring buffer consumer without a callback per record: `read(batch)` returns the decoded
    records available now (and frees their space), `records()` the same records as bytes,
    `wait(ms)` sleeps until more arrive."""

    def __init__(self, map_fd: int, size: int | None = None) -> None:
        self.size = size or _ring_size(map_fd)
        self.mask = self.size - 1
        page = mmap.PAGESIZE
        try:
            self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._prod = mmap.mmap(map_fd, page + 2 * self.size, mmap.MAP_SHARED,
                                   mmap.PROT_READ, offset=page)
        except OSError as err:
            raise LoadError(f"ring buffer (map fd {map_fd}): mmap: {err.strerror}") from err
        self._data = memoryview(self._prod)[page:]
        self._cons_pos = memoryview(self._cons).cast("Q")  # [0]: one aligned 8-byte store
        self._prod_pos = memoryview(self._prod)[:page].cast("Q")
        self._watch(map_fd)
        self.discarded = 0
        self.lost_total = 0  # (never more: a full ring fails the program's reserve instead)

    def records(self, limit: int = 1 << 16) -> list[bytes]:
        """The records available now, each copied out whole and its space freed (discarded
        ones counted and skipped); at most `limit`. For a reader that hands records on as
        bytes (a wasm guest's buffer), without libbpf's Python callback per record."""
        cons = self._cons_pos[0]
        prod = self._prod_pos[0]
        data, mask, unpack = self._data, self.mask, _U32.unpack_from
        out: list[bytes] = []
        while cons < prod and len(out) < limit:
            off = cons & mask
            header = unpack(data, off)[0]
            if header & _BUSY:
                break  # still being written: the rest waits for the next call
            length = header & ~(_BUSY | _DISCARD)
            if header & _DISCARD:
                self.discarded += 1
            else:
                out.append(bytes(data[off + _HEADER:off + _HEADER + length]))
            cons += (length + _HEADER + 7) & ~7
        self._cons_pos[0] = cons
        return out

    def read(self, batch: Any, single: Callable[[bytes], Any] | None = None,
             limit: int = 1 << 16) -> list[Any]:
        """Decode the records available now with `batch` (an ebpm.loader.decode.BatchDecoder);
        a record of another length goes to `single(bytes)` (skipped without one). At most
        `limit` records per call, so a flood cannot hold the caller forever."""
        cons = self._cons_pos[0]
        prod = self._prod_pos[0]
        data, mask, stride, want = self._data, self.mask, batch.stride, batch.size
        out: list[Any] = []
        while cons < prod and len(out) < limit:
            off = cons & mask
            n = min((prod - cons) // stride, limit - len(out))
            if n:
                got = batch.decode(data[off:off + n * stride], want)
                if got:
                    out += got
                    cons += len(got) * stride
                    continue
            header = _U32.unpack_from(data, off)[0]
            if header & _BUSY:
                break  # still being written: the rest waits for the next read
            if header == want:
                continue  # committed since the batch looked at it: the batch takes it now
            length = header & ~(_BUSY | _DISCARD)
            if header & _DISCARD:
                self.discarded += 1
            elif single is not None:
                out.append(single(bytes(data[off + _HEADER:off + _HEADER + length])))
            cons += (length + _HEADER + 7) & ~7
        self._cons_pos[0] = cons
        return out

    def close(self) -> None:
        for view in (self._data, self._cons_pos, self._prod_pos):
            view.release()
        self._prod.close()
        self._cons.close()
