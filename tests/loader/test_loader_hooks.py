"""raw_tp, tp_btf, uprobe, uretprobe and iterators on the real kernel, each asserting what it
produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebpm.run import load_path, run_object
from tests.loader.conftest import LOADED_NAMES, compile_bpf, require_bpf

pytestmark = pytest.mark.kernel


def test_raw_tp_tp_btf_uprobe_uretprobe(built, trigger, collector, adder) -> None:
    require_bpf()
    pkg = load_path(built("hooks"))
    attach = {"on_add": f"uprobe:{adder}:add", "on_add_ret": f"uretprobe:{adder}:add"}
    seen: dict[str, dict[str, object]] = {}

    def both() -> None:
        os.getppid()
        subprocess.run([str(adder), "20", "22"], check=True, capture_output=True)

    class Until4(type(collector)):  # type: ignore[misc]
        def event(self, event: dict[str, object]) -> None:
            seen.setdefault(str(event["hook"]), event)
            if len(seen) == 4:
                raise KeyboardInterrupt  # a normal stop, as Ctrl-C

    reporter = Until4()
    with trigger(both, 0.1):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, attach=attach,
                             args=["--targ-pid", str(os.getpid())], duration=10,
                             sink=reporter)
    assert summary.stopped_by == "signal", seen
    assert set(seen) == {"RAW_TP", "TP_BTF", "UPROBE", "URETPROBE"}
    assert seen["RAW_TP"]["a"] == 110 and seen["RAW_TP"]["pid"] == os.getpid()
    assert seen["TP_BTF"]["a"] == 110 and seen["TP_BTF"]["b"] == os.getppid()
    assert (seen["UPROBE"]["a"], seen["UPROBE"]["b"]) == (20, 22)
    assert seen["URETPROBE"]["a"] == 42
    assert seen["UPROBE"]["pid"] == seen["URETPROBE"]["pid"] != os.getpid()
    assert any("uprobe" in a and "add" in a for a in summary.attached)


def test_uprobe_without_target_says_how_to_give_one(built) -> None:
    require_bpf()
    from ebpm.errors import LoadError

    pkg = load_path(built("hooks"))
    with pytest.raises(LoadError) as info:
        run_object(pkg.object, pkg.config, btf=pkg.btf, duration=0.1)
    assert "on_add" in info.value.message
    assert "--attach on_add=uprobe:BINARY:FUNC" in (info.value.hint or "")


PIDS_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("iter/task")
int dump_pids(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (task && task->pid == task->tgid)
		BPF_SEQ_PRINTF(ctx->meta->seq, "pid %d\n", task->tgid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_an_iterator_is_read_to_its_end_and_the_run_ends(tmp_path, vmlinux_h,
                                                          as_json: bool) -> None:
    """An iter/ program runs once, read as `bpftool iter pin` and `cat` would: what it wrote
    with bpf_seq_printf is the output (raw text; under --json one record per line), and a
    package with no event stream then ends (exit 0, stopped: iterated)."""
    require_bpf()
    LOADED_NAMES.add("dump_pids")
    obj = compile_bpf(tmp_path, "pids", PIDS_C, "-D__TARGET_ARCH_x86", "-I", str(vmlinux_h.parent))
    cmd = [str(Path(sys.executable).with_name("ebpm")), "run", "--duration", "30", str(obj)]
    proc = subprocess.run([*cmd, "--json"] if as_json else cmd, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    mine = f"pid {os.getpid()}"
    if as_json:
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        assert {"iter": "dump_pids", "line": mine} in records
        summary = next(r for r in records if r.get("ebpm") == "summary")
        assert summary["stopped_by"] == "iterated" and summary["output"]["dump_pids"] > 0
        start = next(r for r in records if r.get("ebpm") == "start")
        assert start["iterators"] == ["dump_pids"]
    else:
        assert mine in proc.stdout.splitlines()
        assert "stops once read" in proc.stderr
        assert "(stopped: iterated)" in proc.stderr.splitlines()[-1]
