"""Reading a ring buffer from its memory with batch decoding (issue 18) gives exactly what
libbpf's callback with the per-record decoder gives: the same records in the same order,
discarded records skipped, records of another length decoded one by one; read as bytes (a
wasm guest's ring buffer), the same bytes."""

from __future__ import annotations

import os
import select
import struct
from pathlib import Path

from ebpm.loader import libbpf
from ebpm.loader.btf import Btf
from ebpm.loader.decode import batch_decoder, compile_decoder
from ebpm.loader.libbpf.ringbuf import MappedRing, supported
from tests.loader.conftest import require_bpf

N = 3000


def _expected(n: int) -> bool:
    return n % 7 != 6  # every 7th record is discarded


def _produce(obj_path, consume) -> list[dict]:  # type: ignore[no-untyped-def]
    data = obj_path.read_bytes()
    with libbpf.BpfObject.open_memory(data, name="ringread") as obj:
        obj.map(".rodata").set_initial_value(struct.pack("<I", os.getpid()))
        obj.load()
        obj.program("ringread").attach()
        return consume(obj)


def _by_libbpf(convert):  # type: ignore[no-untyped-def]
    """A consumer for `_produce`: N records through libbpf's callback, each `convert`ed."""
    def consume(obj) -> list:  # type: ignore[no-untyped-def,type-arg]
        got: list = []  # type: ignore[type-arg]
        with libbpf.RingBuffer(obj.map("events").fd, lambda d: got.append(convert(d))) as rb:
            for _ in range(N):
                os.getppid()
            while rb.consume():
                pass
        return got
    return consume


def _package(built, name: str) -> tuple[Path, Btf]:  # type: ignore[no-untyped-def]
    """The built test package's object and the BTF describing its events (skips where the
    mapped reader cannot run)."""
    require_bpf()
    if not supported():
        import pytest

        pytest.skip("the mapped ring reader needs x86-64's load ordering")
    pkg = built(name)
    obj_path = pkg / ".ebpm" / f"{name}.bpf.o"
    btf_path = pkg / ".ebpm" / f"{name}.btf"
    return obj_path, Btf.parse((btf_path if btf_path.exists() else obj_path).read_bytes())


def test_mapped_ring_with_batch_decoding_matches_libbpf(built) -> None:  # type: ignore[no-untyped-def]
    obj_path, btf = _package(built, "ringread")
    type_id = btf.find("event").id
    single = compile_decoder(btf, type_id).decode
    batch = batch_decoder(btf, type_id)

    def mapped(obj) -> list[dict]:  # type: ignore[no-untyped-def]
        got: list[dict] = []
        with MappedRing(obj.map("events").fd) as ring:
            for i in range(N):
                os.getppid()
                if i % 500 == 499:  # read while the ring fills: batches end mid-way
                    got += ring.read(batch, single)
            got += ring.read(batch, single)
            assert ring.discarded == sum(1 for n in range(N) if not _expected(n))
        return got

    ours, theirs = _produce(obj_path, mapped), _produce(obj_path, _by_libbpf(single))
    assert ours == theirs
    assert [e["seq"] for e in ours] == [n for n in range(N) if _expected(n)]
    assert all(e["pid"] == os.getpid() and e["neg"] == -e["seq"] for e in ours)


def test_mapped_ring_records_are_libbpfs_bytes(built) -> None:  # type: ignore[no-untyped-def]
    """`records()` (a wasm guest's ring buffer) copies out the bytes libbpf's callback gets,
    in order, discarded records skipped, however the reads fall between them."""
    obj_path, _ = _package(built, "ringread")

    def mapped(obj) -> list[bytes]:  # type: ignore[no-untyped-def]
        got: list[bytes] = []
        with MappedRing(obj.map("events").fd) as ring:
            for i in range(N):
                os.getppid()
                if i % 500 == 499:
                    got += ring.records(limit=100)  # small reads: some records wait
            while more := ring.records():
                got += more
            assert ring.discarded == sum(1 for n in range(N) if not _expected(n))
        return got

    ours, theirs = _produce(obj_path, mapped), _produce(obj_path, _by_libbpf(bytes))
    assert len(ours) == sum(1 for n in range(N) if _expected(n))
    assert ours == theirs


def test_consumer_position_is_published_whole(built) -> None:  # type: ignore[no-untyped-def]
    """The kernel never sees the consumer position go back. A position written a byte at a time
    (struct.pack_into) is seen half-written: lower than before, or so low that the ring looks
    full, and the kernel drops records (it did, a few per million at 600k/s). The BPF side reads
    the position at every record it sends while a busy producer runs beside the reader. And the
    reader gets every record: one committed between the batch's look and the header's second
    look was skipped (about one per million, without a `single` decoder)."""
    import subprocess
    import sys

    obj_path, btf = _package(built, "ringpos")
    batch = batch_decoder(btf, btf.find("event").id)
    producer = subprocess.Popen(  # a round of getppid() calls per line it reads
        [sys.executable, "-c", "import os, sys\nfor _ in sys.stdin:\n"
         "    for _ in range(500_000): os.getppid()\n    print(flush=True)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert producer.stdin is not None and producer.stdout is not None
    try:
        with libbpf.BpfObject.open_memory(obj_path.read_bytes(), name="ringpos") as obj:
            obj.map(".rodata").set_initial_value(struct.pack("<I", producer.pid))
            obj.load()
            obj.program("ringpos").attach()
            got: list[dict] = []
            with MappedRing(obj.map("events").fd) as ring:
                for n in range(5):  # 3 rounds, more until the reader published across carries
                    producer.stdin.write("go\n")
                    producer.stdin.flush()
                    done = select.poll()
                    done.register(producer.stdout, select.POLLIN)
                    while not done.poll(0):
                        more = ring.read(batch, limit=16)  # small reads: many positions
                        if not more:
                            ring.wait(10)
                        got += more
                    producer.stdout.readline()
                    got += ring.read(batch)
                    high, back, made = (int.from_bytes(obj.map("stats").lookup(
                        struct.pack("<I", i)) or b"", "little") for i in range(3))
                    if n >= 2 and high > 1 << 16:  # (a loaded machine may starve the reader)
                        break
    finally:
        producer.kill()
        producer.wait()
    assert made > 1000 and high > 1 << 16
    assert back == 0, f"the kernel saw the consumer position go back {back} times"
    assert [e["seq"] for e in got] == list(range(made))
