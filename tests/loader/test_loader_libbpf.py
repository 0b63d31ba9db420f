"""The ctypes bindings by themselves: maps (lookup, iterate, update, delete, per-CPU), pins,
links, the libbpf log in Python logging, and a clean close."""

from __future__ import annotations

import logging
import os
import struct
import uuid
from pathlib import Path

import pytest

from ebpm.errors import LoadError
from ebpm.loader import libbpf
from tests.loader.conftest import compile_bpf, require_bpf

pytestmark = pytest.mark.kernel

MAPS_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu SEC(".maps");

const volatile __u32 targ_pid = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	__u32 zero = 0, pid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *v;

	if (pid != targ_pid)
		return 0;
	v = bpf_map_lookup_elem(&counts, &pid);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&counts, &pid, &one, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&percpu, &zero);
	if (v)
		*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def maps_object(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return compile_bpf(tmp_path_factory.mktemp("maps"), "maps", MAPS_C, "-mcpu=v3").read_bytes()


def test_open_configure_load_attach_and_read_maps(maps_object: bytes) -> None:
    require_bpf()
    with libbpf.BpfObject.open_memory(maps_object, name="maps") as obj:
        assert [p.name for p in obj.programs] == ["count_getppid"]
        assert obj.program("count_getppid").section == "tracepoint/syscalls/sys_enter_getppid"
        assert {m.name for m in obj.maps} >= {"counts", "percpu"}
        rodata = obj.map(".rodata")
        assert rodata.internal and rodata.initial_value() == bytes(4)
        rodata.set_initial_value(struct.pack("<I", os.getpid()))
        obj.load()
        assert obj.program("count_getppid").type_name == "tracepoint"
        link = obj.program("count_getppid").attach()
        for _ in range(3):
            os.getppid()
        link.destroy()
        os.getppid()  # detached: not counted

        counts = obj.map("counts")
        key = struct.pack("<I", os.getpid())
        assert (counts.key_size, counts.value_size, counts.max_entries) == (4, 8, 16)
        assert struct.unpack("<Q", counts.lookup(key) or b"")[0] == 3
        counts.update(struct.pack("<I", 7), struct.pack("<Q", 70))
        assert sorted(k for k, _ in counts.items()) == sorted([key, struct.pack("<I", 7)])
        assert counts.delete(struct.pack("<I", 7)) and not counts.delete(struct.pack("<I", 7))
        assert counts.lookup(struct.pack("<I", 7)) is None
        with pytest.raises(LoadError):
            counts.update(struct.pack("<I", 8), struct.pack("<Q", 1), libbpf.BPF_EXIST)

        percpu = obj.map("percpu")
        assert percpu.per_cpu
        raw = percpu.lookup(bytes(4)) or b""
        assert len(raw) == 8 * libbpf.num_possible_cpus()
        assert sum(struct.unpack(f"<{len(raw) // 8}Q", raw)) == 3


def test_pin_and_unpin(maps_object: bytes) -> None:
    from ebpm.errors import MissingFeatureError
    from ebpm.loader.environment import ensure_bpffs

    require_bpf()
    try:
        ensure_bpffs()  # as `run --pin` does: mounted first when it is not
    except MissingFeatureError as err:
        pytest.skip(f"feature probe: {err}")
    base = f"/sys/fs/bpf/ebpm-test-{uuid.uuid4().hex[:8]}"
    with libbpf.BpfObject.open_memory(maps_object, name="maps") as obj:
        obj.load()
        counts = obj.map("counts")
        counts.pin(base + "-map")
        link = obj.program("count_getppid").attach()
        link.pin(base + "-link")
        try:
            assert Path(base + "-map").exists() and Path(base + "-link").exists()
        finally:
            link.unpin()
            counts.unpin(base + "-map")
    assert not Path(base + "-map").exists() and not Path(base + "-link").exists()


def test_libbpf_log_goes_to_logging(maps_object: bytes, caplog: pytest.LogCaptureFixture) -> None:
    require_bpf()
    with caplog.at_level(logging.DEBUG, logger=libbpf.LIBBPF_LOGGER):
        with libbpf.BpfObject.open_memory(maps_object, name="maps") as obj:
            obj.load()
    assert any(r.name == "ebpm.libbpf" and "maps" in r.getMessage() for r in caplog.records)


DAMAGED_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 damaged_counter;

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	damaged_counter++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_a_damaged_object_is_said_to_be_damaged_not_missing(tmp_path: Path) -> None:
    """libbpf's errno from opening bytes in memory (here ENOENT: a BTF variable whose ELF
    symbol is gone) is about their contents: never "No such file or directory"."""
    data = bytearray(compile_bpf(tmp_path, "damaged", DAMAGED_C).read_bytes())
    at = data.rfind(b"damaged_counter\0")  # the symbol's name in .strtab (the last section)
    data[at] = ord("D")
    with pytest.raises(LoadError) as info:
        libbpf.BpfObject.open_memory(bytes(data), name="damaged")
    err = info.value
    assert err.message == ("open object damaged: not a valid BPF object (damaged?): sec '.bss': "
                           "failed to find ELF symbol for VAR 'damaged_counter'")
    assert "No such file" not in err.message and "ebpm build" in (err.hint or "")


def test_errors_name_what_failed(maps_object: bytes) -> None:
    with pytest.raises(LoadError) as info:
        libbpf.BpfObject.open_memory(b"\x7fELF" + bytes(60), name="junk")
    assert info.value.message.startswith("open object junk: ")
    with libbpf.BpfObject.open_memory(maps_object, name="maps") as obj:
        with pytest.raises(LoadError) as info:
            obj.program("nope")
        assert "no program named 'nope'" in info.value.message
        with pytest.raises(LoadError):
            obj.map("counts").fd  # noqa: B018 - not created before load
