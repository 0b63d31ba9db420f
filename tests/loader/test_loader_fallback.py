"""Alternatives and rejections: fallback with a report of dropped programs, verifier log tail."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.package import PackageConfig
from ebpm.run import load_path, run_object
from tests.loader.conftest import compile_bpf, require_bpf

pytestmark = pytest.mark.kernel

BAD_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getppid")
int deref_scalar(void *ctx)
{
	int *p = (int *)(long)bpf_get_current_pid_tgid();
	return *p;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _fentry_refused(obj: bytes) -> str:
    """Feature probe: why this kernel refuses the fentry program, or "" when it loads."""
    with libbpf.BpfObject.open_memory(obj, name="probe") as probe:
        for prog in probe.programs:
            prog.autoload = prog.name == "via_fentry"
        try:
            probe.load()
        except LoadError as err:
            return f"fentry load refused: errno {err.errno}"
    return ""


def test_falls_back_and_reports_what_it_dropped(built, trigger, collector) -> None:
    require_bpf()
    pkg = load_path(built("fallback"))
    assert [p.name for p in pkg.config.programs] == ["via_fentry", "via_kprobe", "via_tp"]
    refused = _fentry_refused(pkg.object)
    with trigger(os.getppid):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, max_events=1, duration=10,
                             args=["--pid", str(os.getpid())], sink=collector)
    dropped = {d.program: d for d in summary.dropped}
    via = collector.events[0]["via"]
    if refused:  # this kernel (e.g. the CI VM): fentry is refused at load
        assert "via_fentry" in dropped
        assert dropped["via_fentry"].reason.startswith("load failed")
        assert dropped["via_fentry"].replaced_by == via.lower()
    else:
        assert via == "VIA_FENTRY" and not dropped
    if via == "VIA_TP":  # no kprobes here: the kprobe loaded but could not attach
        assert dropped["via_kprobe"].reason.startswith("attach failed")
        assert {d.replaced_by for d in summary.dropped} == {"via_tp"}
    assert collector.events[0]["pid"] == os.getpid()
    assert summary.attached == (f"{via.lower()} -> {_section(pkg, via.lower())}",)


def _section(pkg, name: str) -> str:  # type: ignore[no-untyped-def]
    return next(p.section for p in pkg.config.programs if p.name == name)


def test_verifier_rejection_shows_the_log_tail(tmp_path) -> None:
    require_bpf()
    # a bare object: metadata derived at load time
    pkg = load_path(compile_bpf(tmp_path, "bad", BAD_C))
    assert pkg.config == PackageConfig(name="bad", version="0.0.0")
    with pytest.raises(LoadError) as info:
        run_object(pkg.object, pkg.config, duration=1)
    err = info.value
    assert "program deref_scalar rejected by the kernel: Permission denied" in err.message
    assert "invalid mem access 'scalar'" in err.message  # the verifier's own words
    assert "BEGIN PROG LOAD LOG" in err.verifier_log
    assert err.errno == 13


def test_a_refused_program_type_is_one_line_without_libbpfs_log(built) -> None:
    """EPERM for a program type the kernel refuses: the cause is known, so the error is one
    line and its hint; libbpf's CO-RE log and its `ulimit -l` advice stay for -vv."""
    require_bpf()
    pkg = load_path(built("fallback"))
    refused = _fentry_refused(pkg.object)
    if refused != f"fentry load refused: errno {errno.EPERM}":
        pytest.skip(f"feature probe: the kernel does not refuse fentry with EPERM "
                    f"({refused or 'it loads'})")
    with pytest.raises(LoadError) as info:
        run_object(pkg.object, _only(pkg, "via_fentry"), btf=pkg.btf, duration=1)
    err = info.value
    assert err.message == ("load fallback: program via_fentry rejected by the kernel: "
                           "Operation not permitted")
    assert err.hint.startswith("this kernel refuses this program type (EPERM)")
    assert "ulimit" in err.verifier_log  # (libbpf said it: kept on the error, not shown)


def _only(pkg, name: str):  # type: ignore[no-untyped-def]
    """The package's config with `name` as its one program (no alternatives)."""
    from ebpm.record import replace

    programs = tuple(replace(p, group="", autoload=p.name == name) for p in pkg.config.programs)
    return replace(pkg.config, programs=programs)


@pytest.mark.parametrize("name", ["via_fentry", "via_kprobe"])
def test_fentry_and_kprobe_where_the_kernel_has_them(built, trigger, collector, name) -> None:
    require_bpf()
    pkg = load_path(built("fallback"))
    config = _only(pkg, name)
    refused = _fentry_refused(pkg.object) if name == "via_fentry" else ""
    if refused:
        pytest.skip(f"feature probe: the kernel refuses fentry programs ({refused})")
    if name == "via_kprobe" and not Path("/sys/kernel/tracing/kprobe_events").exists():
        pytest.skip("feature probe: the kernel has no kprobes (no tracefs kprobe_events)")
    with trigger(os.getppid):
        summary = run_object(pkg.object, config, btf=pkg.btf, max_events=1, duration=10,
                             args=["--pid", str(os.getpid())], sink=collector)
    assert collector.events[0]["via"] == name.upper() and not summary.dropped
