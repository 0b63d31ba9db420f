"""Unmodified libbpf-tools: the BPF object embedded in Debian's /usr/sbin/runqlat (a libbpf
skeleton), run by ebpm with nothing but what its own BTF says."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from ebpm.errors import UsageError
from ebpm.run import load_path, run_object
from tests.loader.conftest import LOADED_NAMES, Trigger, require_bpf

pytestmark = pytest.mark.kernel
EM_BPF = 247


def embedded_bpf_object(binary: Path) -> bytes:
    """The first BPF ELF object inside `binary` (where a libbpf skeleton keeps it)."""
    data = binary.read_bytes()
    at = data.find(b"\x7fELF", 1)
    while at != -1:
        if data[at + 4] == 2 and struct.unpack_from("<H", data, at + 18)[0] == EM_BPF:
            shoff = struct.unpack_from("<Q", data, at + 0x28)[0]
            shentsize, shnum = struct.unpack_from("<HH", data, at + 0x3A)
            return data[at : at + shoff + shentsize * shnum]
        at = data.find(b"\x7fELF", at + 1)
    raise AssertionError(f"{binary}: no embedded BPF object")


@pytest.fixture(scope="module")
def c_runqlat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = Path("/usr/sbin/runqlat")
    assert binary.exists(), "libbpf-tools is part of scripts/bootstrap.sh (apt install it)"
    out = tmp_path_factory.mktemp("libbpf-tools") / "runqlat.bpf.o"
    out.write_bytes(embedded_bpf_object(binary))
    LOADED_NAMES.update({"sched_wakeup", "sched_wakeup_new", "sched_switch",
                         "handle_sched_wakeup", "handle_sched_wakeup_new",
                         "handle_sched_switch"})
    return out


def test_unmodified_runqlat_object(c_runqlat: Path) -> None:
    require_bpf()
    pkg = load_path(c_runqlat)
    from tests.loader.test_loader_examples import Until

    reporter = Until(lambda e: False)
    with Trigger(lambda: subprocess.run(["/bin/true"]), 0.02):
        summary = run_object(pkg.object, pkg.config, args=["--per-process"], duration=0.7,
                             sink=reporter)
    (snapshots, final), = reporter.snapshots
    assert final and [s.name for s in snapshots] == ["hists"]
    rows = snapshots[0].rows
    assert rows and all(sum(value["slots"]) > 0 for _, value in rows)
    assert len(rows) > 1 and all(isinstance(key, int) and key > 0 for key, _ in rows)  # pids
    assert all(isinstance(value["comm"], str) for _, value in rows)
    assert any(value["comm"] for _, value in rows)
    assert len(summary.attached) == 3  # tp_btf or raw_tp, one per hook


def test_a_host_binary_is_not_a_bpf_object() -> None:
    with pytest.raises(UsageError) as info:
        load_path("/usr/sbin/runqlat")
    assert "not a BPF object" in info.value.message


# struct event of libbpf-tools 0.26's opensnoop.h (Debian 12), for a BTF sidecar
OPENSNOOP_EVENT_C = r"""
// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "vmlinux.h"
struct event {
	__u64 ts;
	pid_t pid;
	uid_t uid;
	int ret;
	int flags;
	__u64 callers[2];
	char comm[16];
	char fname[255];
};
struct event sidecar __attribute__((used));
"""


def test_unmodified_opensnoop_object_with_a_btf_sidecar(tmp_path: Path, vmlinux_h: Path) -> None:
    """Debian's C opensnoop object plus `--btf` for its event type: decoded like ours."""
    require_bpf()
    import json
    import os
    import sys
    import uuid

    obj = tmp_path / "opensnoop.bpf.o"
    obj.write_bytes(embedded_bpf_object(Path("/usr/sbin/opensnoop")))
    (tmp_path / "vmlinux.h").symlink_to(vmlinux_h)
    (tmp_path / "event.c").write_text(OPENSNOOP_EVENT_C)
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", f"-I{tmp_path}", "-c",
                    str(tmp_path / "event.c"), "-o", str(tmp_path / "event.o")], check=True)
    LOADED_NAMES.update({"tracepoint__sys", "tracepoint__syscalls__sys_enter_open",
                         "tracepoint__syscalls__sys_enter_openat"})
    path = f"/tmp/ebpm-c-opensnoop-{uuid.uuid4().hex}"

    def touch() -> None:
        try:
            open(path).close()
        except FileNotFoundError:
            pass

    ebpm = str(Path(sys.executable).with_name("ebpm"))
    proc = subprocess.Popen([ebpm, "run", "--json", "--max-events", "1", "--duration", "10",
                             "--btf", str(tmp_path / "event.o"), str(obj), "--",
                             "--targ-tgid", str(os.getpid()), "--targ-failed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Trigger(touch, 0.05):
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    event = next(e for e in map(json.loads, out.splitlines()) if "ebpm" not in e)
    assert event["fname"] == path and event["ret"] == -2 and event["pid"] == os.getpid()
    assert len(event["callers"]) == 2
