"""Pins: a session pinned to bpffs keeps counting after it is closed, is adopted back (maps
and events through the pins, nothing loaded again), and its pins' removal detaches it."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.loader.conftest import LOADED_NAMES, bpf_fds, compile_bpf, require_bpf

pytestmark = pytest.mark.kernel

PINNED_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} pin_counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpgid")
int pinned_getpgid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *v;

	if (pid != targ_pid)
		return 0;
	v = bpf_map_lookup_elem(&pin_counts, &pid);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&pin_counts, &pid, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def pinned_object(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    obj = compile_bpf(tmp_path_factory.mktemp("pinned"), "pinned", PINNED_C, "-mcpu=v3")
    LOADED_NAMES.add("pinned_getpgid")
    return obj.read_bytes()


def _links() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True)
    return {ln["id"] for ln in json.loads(out.stdout or "[]")}


def _link_id(pin: Path) -> int:
    from ebpm.loader import libbpf

    fd = libbpf.obj_get(str(pin))
    try:
        info = Path(f"/proc/self/fdinfo/{fd}").read_text()
    finally:
        os.close(fd)
    return int(next(ln for ln in info.splitlines() if ln.startswith("link_id:")).split()[1])


def _gone(link_id: int) -> bool:
    deadline = time.monotonic() + 3  # freed after an RCU grace period
    while link_id in _links():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _count(snapshots: list[object]) -> int:
    (snap,) = [s for s in snapshots if s.name == "pin_counts"]  # type: ignore[attr-defined]
    return sum(v for k, v in snap.rows if k == os.getpid())  # type: ignore[attr-defined]


def test_pin_close_adopt_remove(pinned_object: bytes) -> None:
    require_bpf()
    from ebpm.build.metadata import extract
    from ebpm.loader.args import parse_args, patch_rodata
    from ebpm.loader.btf import Btf
    from ebpm.loader.elf import sections
    from ebpm.loader.environment import ensure_bpffs
    from ebpm.loader.pins import adopt_session, pin_session, pinned_links, remove_pins
    from ebpm.loader.session import Session

    ensure_bpffs()
    config = extract(pinned_object, name="pinned", version="1.0.0")
    parsed = parse_args(config.args, ["--targ-pid", str(os.getpid())])
    offsets = {v.name: v.offset for v in Btf.parse(pinned_object).datasec(".rodata")}
    rodata = patch_rodata(sections(pinned_object)[".rodata"], config.args, parsed, offsets)
    directory = Path("/sys/fs/bpf") / f"ebpm-test-{uuid.uuid4().hex[:12]}"
    try:
        with Session.start(pinned_object, config, rodata=rodata) as session:
            names = pin_session(session, directory)
            assert sorted(names) == ["link-pinned_getpgid", "map-pin_counts"]
            os.getpgid(0)
            assert _count(session.snapshot_maps()) == 1
        assert not [fd for fd in bpf_fds() if "bpf-prog" in fd or "bpf-link" in fd]
        link_id = _link_id(directory / "link-pinned_getpgid")
        assert link_id in _links()  # attached through its pin alone
        for _ in range(3):
            os.getpgid(0)  # counted while no process holds it
        assert pinned_links(directory) == ["pinned_getpgid"]
        with adopt_session(pinned_object, config, directory,
                           attached=["pinned_getpgid -> tracepoint"]) as adopted:
            assert _count(adopted.snapshot_maps()) == 4
            assert adopted.attached == ("pinned_getpgid -> tracepoint",)
        remove_pins(directory)
        assert not directory.exists()
        assert _gone(link_id)
    finally:
        remove_pins(directory)
