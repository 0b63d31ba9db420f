"""Reading a perf event array from its memory with batch decoding gives exactly what libbpf's
callback with the per-record decoder gives: the same records in the same order, records that
wrap at the ring's end put together, records of another size decoded one by one; and it counts
the records the kernel dropped as libbpf does."""

from __future__ import annotations

import os
import struct

import pytest

from ebpm.loader import libbpf
from ebpm.loader.btf import Btf
from ebpm.loader.decode import batch_decoder, compile_decoder
from ebpm.loader.libbpf.perfbuf import MappedPerf
from ebpm.loader.libbpf.ringbuf import supported
from tests.loader.conftest import require_bpf

N = 10_000  # 9,000 samples of 48 bytes and 1,000 of 56: the 256 KiB ring wraps twice
PAGES = 64


def _package(built):  # type: ignore[no-untyped-def]
    require_bpf()
    if not supported():
        pytest.skip("the mapped perf reader needs x86-64's load ordering")
    pkg = built("perfread")
    obj_path = pkg / ".ebpm" / "perfread.bpf.o"
    btf_path = pkg / ".ebpm" / "perfread.btf"
    return obj_path, Btf.parse((btf_path if btf_path.exists() else obj_path).read_bytes())


def _produce(obj_path, consume):  # type: ignore[no-untyped-def]
    """`consume(obj, produce)` with the program attached, on one CPU (so that every record
    goes to one ring, in order): `produce(n)` makes n records."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        with libbpf.BpfObject.open_memory(obj_path.read_bytes(), name="perfread") as obj:
            obj.map(".rodata").set_initial_value(struct.pack("<I", os.getpid()))
            obj.load()
            obj.program("perfread").attach()

            def produce(n: int) -> None:
                for _ in range(n):
                    os.getppid()

            return consume(obj, produce)
    finally:
        os.sched_setaffinity(0, cpus)


def test_mapped_perf_with_batch_decoding_matches_libbpf(built) -> None:  # type: ignore[no-untyped-def]
    obj_path, btf = _package(built)
    type_id = btf.find("event").id
    single = compile_decoder(btf, type_id).decode
    batch = batch_decoder(btf, type_id, perf=True)
    assert batch.stride == 48

    def mapped(obj, produce) -> list[dict]:  # type: ignore[no-untyped-def]
        got: list[dict] = []
        with MappedPerf(obj.map("events").fd, page_count=PAGES) as perf:
            for _ in range(N // 500):  # read while the ring fills: batches end mid-way
                produce(500)
                got += perf.read(batch, single, limit=300)  # small reads: some records wait
            while more := perf.read(batch, single):
                got += more
            assert perf.lost_total == 0
        return got

    def by_libbpf(obj, produce) -> list[dict]:  # type: ignore[no-untyped-def]
        got: list[dict] = []
        with libbpf.PerfBuffer(obj.map("events").fd, lambda cpu, d: got.append(single(d)),
                               page_count=PAGES) as perf:
            for _ in range(N // 500):
                produce(500)
                perf.consume()
            assert perf.lost_total == 0
        return got

    ours, theirs = _produce(obj_path, mapped), _produce(obj_path, by_libbpf)
    assert ours == theirs
    assert [e["seq"] for e in ours] == list(range(N))
    assert all(e["pid"] == os.getpid() and e["neg"] == -e["seq"] for e in ours)


def test_mapped_perf_counts_what_the_kernel_dropped(built) -> None:  # type: ignore[no-untyped-def]
    """A flood with nobody reading: the kernel keeps what fits and counts the rest, which it
    reports (PERF_RECORD_LOST) with the first record it can write once the reader made room;
    every record is either read or counted lost, as with libbpf's lost callback."""
    obj_path, btf = _package(built)
    batch = batch_decoder(btf, btf.find("event").id, perf=True)
    flood = 3 * N

    def mapped(obj, produce) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        with MappedPerf(obj.map("events").fd, page_count=PAGES) as perf:
            produce(flood)
            read = len(perf.read(batch))  # (the longer records are skipped: no `single`)
            produce(1)  # room again: the kernel writes the LOST record, then this one
            read += len(perf.read(batch))
            return read, perf.lost_total

    def by_libbpf(obj, produce) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        got: list[bytes] = []
        with libbpf.PerfBuffer(obj.map("events").fd, lambda cpu, d: got.append(d),
                               page_count=PAGES) as perf:
            produce(flood)
            perf.consume()
            produce(1)
            perf.consume()
            return sum(1 for d in got if len(d) == 36), perf.lost_total

    (read, lost), (theirs_read, theirs_lost) = (_produce(obj_path, mapped),
                                                _produce(obj_path, by_libbpf))
    assert lost > 0 and read > 0
    assert (read, lost) == (theirs_read, theirs_lost)


def test_mapped_perf_records_are_libbpfs_bytes(built) -> None:  # type: ignore[no-untyped-def]
    """`records()` (a wasm guest's perf buffer) copies out the bytes libbpf's callback gets,
    padding included, in order, however the reads fall between them."""
    obj_path, _ = _package(built)

    def mapped(obj, produce) -> list[bytes]:  # type: ignore[no-untyped-def]
        got: list[bytes] = []
        with MappedPerf(obj.map("events").fd, page_count=PAGES) as perf:
            for _ in range(N // 500):
                produce(500)
                got += perf.records(limit=300)  # small reads: some records wait
            while more := perf.records():
                got += more
        return got

    def by_libbpf(obj, produce) -> list[bytes]:  # type: ignore[no-untyped-def]
        got: list[bytes] = []
        with libbpf.PerfBuffer(obj.map("events").fd, lambda cpu, d: got.append(d),
                               page_count=PAGES) as perf:
            for _ in range(N // 500):
                produce(500)
                perf.consume()
        return got

    ours, theirs = _produce(obj_path, mapped), _produce(obj_path, by_libbpf)
    assert len(ours) == N and {len(d) for d in ours} == {36, 44}
    assert ours == theirs
