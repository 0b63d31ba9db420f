"""Reading a ring buffer from its memory with batch decoding (issue 18) gives exactly what
libbpf's callback with the per-record decoder gives: the same records in the same order,
discarded records skipped, records of another length decoded one by one."""

from __future__ import annotations

import os
import struct

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


def test_mapped_ring_with_batch_decoding_matches_libbpf(built) -> None:  # type: ignore[no-untyped-def]
    require_bpf()
    if not supported():
        import pytest

        pytest.skip("the mapped ring reader needs x86-64's load ordering")
    pkg = built("ringread")
    obj_path = pkg / ".ebpm" / "ringread.bpf.o"
    btf_path = pkg / ".ebpm" / "ringread.btf"
    btf = Btf.parse((btf_path if btf_path.exists() else obj_path).read_bytes())
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

    def callback(obj) -> list[dict]:  # type: ignore[no-untyped-def]
        got: list[dict] = []
        with libbpf.RingBuffer(obj.map("events").fd, lambda d: got.append(single(d))) as rb:
            for _ in range(N):
                os.getppid()
            while rb.consume():
                pass
        return got

    ours, theirs = _produce(obj_path, mapped), _produce(obj_path, callback)
    assert ours == theirs
    assert [e["seq"] for e in ours] == [n for n in range(N) if _expected(n)]
    assert all(e["pid"] == os.getpid() and e["neg"] == -e["seq"] for e in ours)
