"""Networking hooks with explicit targets (xdp, tc on lo) and a counter map reported as a table."""

from __future__ import annotations

import socket
import subprocess

import pytest

from ebpm.run import load_path, run_object
from tests.loader.conftest import Trigger, require_bpf

pytestmark = pytest.mark.kernel


def _udp_to_lo() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"ebpm", ("127.0.0.1", 9))  # discard port: nobody listens, lo still sees it


def test_xdp_and_tc_on_loopback_count_packets(built, collector) -> None:
    require_bpf()
    pkg = load_path(built("netcount"))
    attach = {"count_xdp": "xdp:lo", "count_tc": "tc:lo"}
    with Trigger(_udp_to_lo, 0.02):
        summary = run_object(pkg.object, pkg.config, attach=attach, duration=0.6,
                             sink=collector)
    assert sorted(summary.attached) == ["count_tc -> tc ingress ifindex 1",
                                        "count_xdp -> xdp ifindex 1"]
    (snapshots, final), = collector.snapshots
    assert final and [s.name for s in snapshots] == ["counts"] and snapshots[0].kind == "table"
    rows = dict(snapshots[0].rows)
    assert rows[0] > 0 and rows[1] > 0  # XDP, tc
    qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True,
                            text=True).stdout
    assert "clsact" not in qdiscs  # the hook ebpm added is gone again
