"""A perf event array read straight from its memory, as cilium/ebpf's perf reader does: libbpf
opens one perf event per CPU and sets up the epoll that waits for them (`perf_buffer__new`, whose
callbacks are never called here); each CPU's ring is mapped once more and read a batch at a time,
without libbpf's Python callback per record.

Each ring is a header page (`struct perf_event_mmap_page`: data_head at byte 1024, data_tail at
1032) and `page_count` pages of records, each 8-byte aligned and starting with `struct
perf_event_header` (u32 type, u16 misc, u16 size). A sample (PERF_RECORD_SAMPLE, 9) carries u32
raw size and the record bpf_perf_event_output wrote, padded to 8; a PERF_RECORD_LOST (2) says
how many records the kernel dropped (u64 id, u64 lost). Unlike a BPF ring buffer the data pages
are mapped once, so a record that wraps at the end is copied together from its two pieces. The
kernel publishes data_head after the records (a write barrier); this reader relies on loads not
being reordered with loads, and stores not with earlier loads (x86-64: `ringbuf.supported()`),
elsewhere use libbpf's PerfBuffer. data_tail is written as one 8-byte word.
"""

from __future__ import annotations

import mmap
import struct

from ebpm.errors import LoadError
from ebpm.loader.decode import PERF_HEADER, PERF_RECORD_SAMPLE
from ebpm.loader.libbpf.buffers import PerfBuffer
from ebpm.loader.libbpf.ringbuf import MappedBuffer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["MappedPerf"]

_RECORD_LOST = 2
_HEAD, _TAIL = 1024 // 8, 1032 // 8  # data_head, data_tail: words of the header page
_HEADER = struct.Struct("<I2xH")  # type, size
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class _CpuRing:
    """One CPU's ring: the header page's words and the data pages."""

    __slots__ = ("map", "words", "data", "size")

    def __init__(self, fd: int, pages: int) -> None:
        page = mmap.PAGESIZE
        self.map = mmap.mmap(fd, page * (1 + pages), mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        self.words = memoryview(self.map)[:page].cast("Q")  # [_TAIL]: one aligned store
        self.data = memoryview(self.map)[page:]
        self.size = page * pages

    def close(self) -> None:
        self.words.release()
        self.data.release()
        self.map.close()


def _no_sample(_cpu: int, _data: bytes) -> None:  # (libbpf never polls: no call comes)
    pass


class MappedPerf(MappedBuffer):
    """A perf event array consumer without a callback per record: `read(batch, single)`
    returns the decoded records available now on every CPU (and frees their space),
    `wait(ms)` sleeps until more arrive; `lost_total` counts the records the kernel dropped."""

    def __init__(self, map_fd: int, page_count: int = 64) -> None:
        self.lost_total = 0
        self._buffer = PerfBuffer(map_fd, _no_sample, page_count=page_count)
        self._rings: list[_CpuRing] = []
        try:
            for fd in self._buffer.cpu_fds():
                self._rings.append(_CpuRing(fd, page_count))
            self._watch(self._buffer.epoll_fd)  # readable when a CPU's ring has records
        except OSError as err:
            self.close()
            raise LoadError(f"perf buffer (map fd {map_fd}): mmap: {err.strerror}") from err
        except BaseException:
            self.close()
            raise

    def records(self, limit: int = 1 << 16) -> list[bytes]:
        """The samples available now, each copied out as the bytes libbpf's callback gets
        (the record and its padding) and its space freed; at most `limit`. For a reader that
        hands records on as bytes (a wasm guest's buffer)."""
        return self.read(None, bytes, limit)

    def read(self, batch: Any, single: Callable[[bytes], Any] | None = None,
             limit: int = 1 << 16) -> list[Any]:
        """Decode the samples available now with `batch` (an ebpm.loader.decode.BatchDecoder
        made with perf=True; None: none); a sample of another size goes to `single(bytes)`
        (skipped without one). At most `limit` records per call, so a flood cannot hold the
        caller forever."""
        out: list[Any] = []
        for ring in self._rings:
            if len(out) >= limit:
                break
            self._read_ring(ring, batch, single, limit, out)
        return out

    def _read_ring(self, ring: _CpuRing, batch: Any, single: Callable[[bytes], Any] | None,
                   limit: int, out: list[Any]) -> None:
        words, data, size = ring.words, ring.data, ring.size
        tail = words[_TAIL]
        head = words[_HEAD]
        mask, header = size - 1, _HEADER.unpack_from
        stride = batch.stride if batch is not None else 0
        while tail < head and len(out) < limit:
            off = tail & mask
            # whole samples of the batch's type up to the ring's end (or the head)
            n = min((head - tail) // stride, (size - off) // stride,
                    limit - len(out)) if stride else 0
            if n:
                got = batch.decode(data[off:off + n * stride], PERF_RECORD_SAMPLE)
                if got:
                    out += got
                    tail += len(got) * stride
                    continue
            kind, length = header(data, off)  # (8-byte aligned: a header never wraps)
            if length < 8:
                raise LoadError(f"perf buffer: a record of {length} bytes at {tail}",
                                hint="the ring is corrupt; run again")
            if off + length <= size:
                rec = data[off:off + length]
            else:  # wraps: its two pieces together
                rec = memoryview(bytes(data[off:]) + bytes(data[:off + length - size]))
            if kind == PERF_RECORD_SAMPLE:
                if length == stride:  # (never without a batch: stride 0)
                    out += batch.decode(rec, PERF_RECORD_SAMPLE)
                elif single is not None:
                    raw = _U32.unpack_from(rec, 8)[0]
                    out.append(single(bytes(rec[PERF_HEADER:PERF_HEADER + raw])))
            elif kind == _RECORD_LOST:
                self.lost_total += _U64.unpack_from(rec, 16)[0]
            tail += length
        words[_TAIL] = tail

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
        self._rings = []
        self._buffer.free()
