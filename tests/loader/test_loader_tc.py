"""Issue 13, item 5: tc attachment is crash-safe and neighbourly. On this kernel (tcx) a run
killed with -9 leaves nothing attached and the next run works; filters other tools put on the
interface survive a run; on the netlink fallback (kernels without tcx) ebpm removes only its
own filter, never the clsact qdisc, and explains a filter a killed run left at its handle.
Each test works in its own network namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loader.conftest import ROOT, compile_bpf, require_bpf

pytestmark = pytest.mark.kernel
EBPM = [str(Path(sys.executable).with_name("ebpm"))]
PASS_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int pass(struct __sk_buff *skb) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def netns() -> Iterator[str]:
    require_bpf()
    name = f"ebpm-tc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture(scope="module")
def pass_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tool's tc program (loaded by iproute2's `tc`, not by ebpm)."""
    return compile_bpf(tmp_path_factory.mktemp("pass"), "pass", PASS_C)


def _in(ns: str, *cmd: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          check=True).stdout


def _start_run(ns: str, pkg: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *EBPM, "-v", "run", "--json",
                             "--attach", "count_tc=tc:lo", "--attach", "count_xdp=xdp:lo",
                             str(pkg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "attached count_tc -> tc ingress" in line or not line:
            break
    assert "attached count_tc -> tc ingress" in seen, seen
    return proc


def _foreign_filter(ns: str, obj: Path) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "clsact"],
                   capture_output=True)  # it may be there already
    _in(ns, "tc", "filter", "add", "dev", "lo", "ingress", "prio", "7", "handle", "7", "bpf",
        "da", "obj", str(obj), "sec", "tc")


def test_kill_9_leaves_nothing_attached(built, netns: str) -> None:
    pkg = built("netcount")
    proc = _start_run(netns, pkg)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert "clsact" not in _in(netns, "tc", "qdisc", "show", "dev", "lo")
    assert _in(netns, "tc", "filter", "show", "dev", "lo", "ingress").strip() == ""
    again = subprocess.run(["ip", "netns", "exec", netns, *EBPM, "run", "--duration", "0.5",
                            "--attach", "count_tc=tc:lo", "--attach", "count_xdp=xdp:lo",
                            str(pkg)], capture_output=True,
                           text=True, timeout=30, cwd=ROOT)
    assert again.returncode == 0, again.stderr


def test_other_tools_filters_survive_a_run(built, netns: str, pass_object: Path) -> None:
    proc = _start_run(netns, built("netcount"))
    _foreign_filter(netns, pass_object)  # another tool, while ebpm runs
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert proc.returncode == 0
    assert "clsact" in _in(netns, "tc", "qdisc", "show", "dev", "lo")
    assert "pass.bpf.o:[tc]" in _in(netns, "tc", "filter", "show", "dev", "lo", "ingress")


_FALLBACK = r"""
import os, sys
from ebpm.loader.libbpf import BpfObject
from ebpm.loader.libbpf.links import tc_filter
obj = BpfObject.open_file(sys.argv[1])
obj.load()
from ebpm.errors import LoadError
try:
    link = tc_filter(obj.program("count_tc"), 1)
except LoadError as err:
    print(err.message, err.hint, file=sys.stderr)
    sys.exit(1)
if sys.argv[2] == "crash":
    os._exit(9)  # like kill -9: nothing is undone
link.destroy()
obj.close()
"""


def _fallback(ns: str, obj: Path, how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _FALLBACK, str(obj),
                           how], capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_the_netlink_fallback_removes_only_its_own_filter(built, netns: str,
                                                          pass_object: Path) -> None:
    obj = built("netcount") / ".ebpm" / "netcount.bpf.o"
    _foreign_filter(netns, pass_object)
    r = _fallback(netns, obj, "clean")
    assert r.returncode == 0, r.stderr
    assert "clsact" in _in(netns, "tc", "qdisc", "show", "dev", "lo")
    filters = _in(netns, "tc", "filter", "show", "dev", "lo", "ingress")
    assert "pass.bpf.o:[tc]" in filters and "netcount" not in filters


def test_the_netlink_fallback_explains_a_leftover(built, netns: str) -> None:
    obj = built("netcount") / ".ebpm" / "netcount.bpf.o"
    assert _fallback(netns, obj, "crash").returncode == 9
    assert "count_tc" in _in(netns, "tc", "filter", "show", "dev", "lo", "ingress")
    r = _fallback(netns, obj, "clean")
    assert r.returncode == 1
    assert ("tc ingress on lo already has a filter at ebpm's handle 0xeb (pref 235): left by "
            "an ebpm run that was killed?") in r.stderr
    assert "tc filter del dev lo ingress pref 235 handle 0xeb bpf" in r.stderr
    _in(netns, "tc", "filter", "del", "dev", "lo", "ingress", "pref", "235", "handle", "0xeb",
        "bpf")
    assert _fallback(netns, obj, "clean").returncode == 0
