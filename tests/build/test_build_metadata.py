"""Metadata extraction on real compiled objects: programs, groups, maps, args, events."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ebpm.build import build
from ebpm.build.metadata import extract, flag_name
from ebpm.build.sections import classify
from ebpm.build.source_docs import arg_docs
from ebpm.errors import BuildError, ManifestError
from ebpm.package import ArgSpec, EventSpec

HEADER = r"""
/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __PROBE_H
#define __PROBE_H
enum mode { MODE_A = 1, MODE_B = 2 };
struct rec { __u64 ts; __u32 cpu; };
struct event { __u32 pid; char comm[16]; };
#endif
"""

SOURCE = r"""
// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "probe.h"

char LICENSE[] SEC("license") = "GPL";

/* Be verbose. */
const volatile bool verbose = true;
// Minimum latency,
// in microseconds.
const volatile __u64 targ_min_us = 1000;
const volatile int filter_cgroup_id = -7; /* trailing help */
const volatile char targ_comm[16] = "bash";
const volatile enum mode targ_mode = MODE_B;
const volatile __s8 small = -2;
static const char not_an_arg[] = "format";
int counter;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} pb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 100);
	__type(key, u64);
	__type(value, struct rec);
} recs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

SEC("tracepoint/sched/sched_switch")
int tp_switch(void *ctx) { return verbose + targ_min_us + filter_cgroup_id + targ_mode + small; }

SEC("raw_tp/sched_switch")
int legacy_switch(void *ctx) { return targ_comm[0] + not_an_arg[0]; }

SEC("tp_btf/sched_switch")
int on_switch(u64 *ctx) { counter++; return 0; }

SEC("?fentry/do_nanosleep")
int maybe(u64 *ctx) { return 0; }

SEC("xdp")
int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }

SEC("iter/task")
int dump_task(void *ctx) { return 0; }

SEC("cgroup_skb/ingress")
int ingress(struct __sk_buff *skb) { return 1; }
"""


@pytest.fixture(scope="module")
def default_probe(tmp_path_factory: pytest.TempPathFactory, vmlinux_h: Path) -> Any:
    """The probe package without ebpm.toml extras, built once for the tests that only read it."""
    root = tmp_path_factory.mktemp("probe") / "probe"
    root.mkdir()
    (root / "ebpm.toml").write_text(
        '[package]\nname = "probe"\nversion = "1.2.3"\nlicense = "GPL-2.0"\n'
    )
    (root / "probe.bpf.c").write_text(SOURCE)
    (root / "probe.h").write_text(HEADER)
    return build(root, vmlinux_h=vmlinux_h)


@pytest.fixture
def probe(make_package: Callable[..., Path], vmlinux_h: Path) -> Callable[[str], object]:
    def make(toml: str = "") -> object:
        root = make_package("probe", {"probe.bpf.c": SOURCE, "probe.h": HEADER}, toml)
        return build(root, vmlinux_h=vmlinux_h)

    return make


def test_programs_sections_and_hook_groups(default_probe: Any) -> None:
    config = default_probe.config
    got = [(p.name, p.type, p.attach, p.group, p.autoload) for p in config.programs]
    assert got == [
        # one hook (sched_switch) three ways: tp_btf preferred, then raw_tp, then tracepoint
        ("on_switch", "tp_btf", "sched_switch", "on_switch", True),
        ("legacy_switch", "raw_tracepoint", "sched_switch", "on_switch", True),
        ("tp_switch", "tracepoint", "sched/sched_switch", "on_switch", True),
        ("maybe", "fentry", "do_nanosleep", "", False),
        ("xdp_pass", "xdp", "", "", True),
        ("dump_task", "iter", "task", "", True),
        ("ingress", "cgroup_skb", "ingress", "", True),
    ]
    assert config.program("maybe").section == "fentry/do_nanosleep"
    assert config.license == "GPL-2.0" and config.version == "1.2.3"


def test_maps_with_types_and_sizes(default_probe: Any) -> None:
    config = default_probe.config
    maps = {m.name: m for m in config.maps}
    assert set(maps) == {"pb", "recs", "counts"}
    pb, recs, counts = maps["pb"], maps["recs"], maps["counts"]
    assert (pb.type, pb.key_size, pb.value_size, pb.key_type) == ("perf_event_array", 4, 4, "")
    assert (recs.type, recs.max_entries, recs.key_type, recs.key_size) == ("lru_hash", 100,
                                                                          "u64", 8)
    assert (recs.value_type, recs.value_size) == ("rec", 16)
    assert (counts.type, counts.value_type, counts.value_size) == ("percpu_array", "u64", 8)


def test_args_types_defaults_help_and_flags(default_probe: Any) -> None:
    config = default_probe.config
    args = {a.name: a for a in config.args}
    assert list(args) == ["verbose", "targ_min_us", "filter_cgroup_id", "targ_comm",
                          "targ_mode", "small"]
    assert args["verbose"] == ArgSpec("verbose", "verbose", "bool", 1, True, "Be verbose.", 0)
    assert (args["targ_min_us"].flag, args["targ_min_us"].type) == ("min-us", "uint")
    assert args["targ_min_us"].default == 1000
    assert args["targ_min_us"].help == "Minimum latency, in microseconds."
    assert (args["filter_cgroup_id"].flag, args["filter_cgroup_id"].default) == ("cgroup-id", -7)
    assert args["filter_cgroup_id"].help == "trailing help"
    assert (args["targ_comm"].type, args["targ_comm"].size) == ("str", 16)
    assert args["targ_comm"].default == "bash"
    assert (args["targ_mode"].type, args["targ_mode"].default) == ("uint", 2)
    assert (args["small"].type, args["small"].size, args["small"].default) == ("int", 1, -2)
    offsets = sorted(a.offset for a in config.args)
    assert len(set(offsets)) == len(offsets)


def test_events_by_convention_need_a_sidecar(default_probe: Any) -> None:
    assert default_probe.config.events == (EventSpec("pb", "event"),)
    assert default_probe.btf_path is not None and default_probe.btf_path.is_file()


def test_declared_events_in_object_btf_need_no_sidecar(probe: Callable[[str], object]) -> None:
    result = probe('[events]\npb = "struct rec"\n')
    assert result.config.events == (EventSpec("pb", "rec"),)  # type: ignore[attr-defined]
    assert result.btf_path is None  # type: ignore[attr-defined]
    assert not (result.object_path.parent / "probe.btf").exists()  # type: ignore[attr-defined]


def test_manifest_overrides_and_declared_groups(probe: Callable[[str], object]) -> None:
    toml = (
        '[args.verbose]\nflag = "debug"\nhelp = "Print more."\n'
        '[args.small]\nflag = "--tiny"\n'  # the leading -- may be written
        '[build.groups]\nnet = ["ingress", "xdp_pass"]\n'
        '[build]\narch = "arm64"\n'
    )
    config = probe(toml).config  # type: ignore[attr-defined]
    verbose = config.args[0]
    assert (verbose.flag, verbose.help) == ("debug", "Print more.")
    assert config.args[-1].flag == "tiny"
    net = [(p.name, p.group) for p in config.programs if p.group == "net"]
    assert net == [("ingress", "net"), ("xdp_pass", "net")]
    # compiled with __TARGET_ARCH_arm64, so it requires arm64 (it claimed the build machine's)
    assert config.requirements.arch == ("arm64",)


def test_requirements_name_the_arch_it_was_compiled_for(default_probe: Any) -> None:
    """Without [build] arch: this machine's, in libbpf's name (x86 here, not x86_64), so that
    a cross-build and a native one say the same for the same target."""
    from ebpm.build.toolchain import target_arch

    assert default_probe.config.requirements.arch == (target_arch(),)
    loadtime = (default_probe.object_path.parent / "loadtime.txt").read_text()
    assert f"require - 1 {target_arch()}" in loadtime.splitlines()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[args.nope]\nhelp = "x"\n', "no `const volatile` global"),
        ('[args.verbose]\ncolor = "x"\n', "only `flag` and `help`"),
        ('[args.verbose]\nflag = "min-us"\n', "used twice"),
        ('[events]\nrecs = "struct rec"\n', "no ring buffer or perf event array"),
        ('[build.groups]\ng = ["nope"]\n', "no program named 'nope'"),
        ('[build]\noptimize = true\n', "unknown key"),
    ],
)
def test_manifest_mistakes_are_reported(
    probe: Callable[[str], object], tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ManifestError, match=message) as info:
        probe(toml)
    assert str(info.value).startswith(f"{tmp_path / 'probe' / 'ebpm.toml'}: ")


def test_bare_object_without_manifest_or_clang(tmp_path: Path, vmlinux_h: Path) -> None:
    """The push path: extract() on a plain object, pure Python (no tools on PATH needed)."""
    src = tmp_path / "bare.bpf.c"
    src.write_text(
        '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\nconst volatile int targ_pid = 3;\n'
        'SEC("tp/syscalls/sys_enter_openat") int h(void *c) { return targ_pid; }\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
    )
    include = f"-I{vmlinux_h.parent}"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", include, "-c", str(src), "-o",
                    str(tmp_path / "bare.o")], check=True)
    config = extract((tmp_path / "bare.o").read_bytes(), name="bare", version="2.0.0")
    assert (config.name, config.version, config.license) == ("bare", "2.0.0", "GPL")
    assert [(p.name, p.type) for p in config.programs] == [("h", "tracepoint")]
    assert config.args == (ArgSpec("targ_pid", "pid", "int", 4, 3, "", 0),)
    assert extract((tmp_path / "bare.o").read_bytes()).version == "0.0.0"

    subprocess.run(["clang", "-O2", "-target", "bpf", include, "-c", str(src), "-o",
                    str(tmp_path / "nobtf.o")], check=True)
    with pytest.raises(BuildError, match="no .BTF section"):
        extract((tmp_path / "nobtf.o").read_bytes())
    with pytest.raises(BuildError, match="not a BPF object"):
        extract(Path("/bin/true").read_bytes())
    with pytest.raises(BuildError, match="not an ELF file"):
        extract(b"hello")


@pytest.mark.parametrize(
    ("section", "kind", "attach", "autoload"),
    [
        ("tp/sched/sched_switch", "tracepoint", "sched/sched_switch", True),
        ("tracepoint/syscalls/sys_enter_openat", "tracepoint", "syscalls/sys_enter_openat", True),
        ("raw_tracepoint/sys_enter", "raw_tracepoint", "sys_enter", True),
        ("raw_tp.w/sys_enter", "raw_tracepoint", "sys_enter", True),
        ("tp_btf/sched_wakeup", "tp_btf", "sched_wakeup", True),
        ("kprobe/do_sys_openat2", "kprobe", "do_sys_openat2", True),
        ("kretprobe/do_sys_openat2", "kretprobe", "do_sys_openat2", True),
        ("kprobe.multi/do_*", "kprobe.multi", "do_*", True),
        ("uprobe//bin/bash:readline", "uprobe", "/bin/bash:readline", True),
        ("uretprobe.s/libc.so.6:malloc", "uretprobe", "libc.so.6:malloc", True),
        ("usdt/libc.so.6:libc:setjmp", "usdt", "libc.so.6:libc:setjmp", True),
        ("?fentry/do_unlinkat", "fentry", "do_unlinkat", False),
        ("fexit/do_unlinkat", "fexit", "do_unlinkat", True),
        ("lsm/file_open", "lsm", "file_open", True),
        ("lsm.s/bprm_committed_creds", "lsm", "bprm_committed_creds", True),
        ("xdp", "xdp", "", True),
        ("xdp.frags", "xdp", "", True),
        ("tc", "tc", "", True),
        ("classifier", "tc", "", True),
        ("socket", "socket", "", True),
        ("cgroup_skb/egress", "cgroup_skb", "egress", True),
        ("cgroup/connect4", "cgroup", "connect4", True),
        ("iter/task_file", "iter", "task_file", True),
        ("perf_event", "perf_event", "", True),
        ("sk_lookup", "sk_lookup", "", True),
        ("my_custom", "", "", True),
    ],
)
def test_section_kinds_follow_libbpf(section: str, kind: str, attach: str, autoload: bool) -> None:
    got = classify(section)
    assert (got.kind, got.attach, got.autoload) == (kind, attach, autoload)


def test_flag_names_and_doc_comments() -> None:
    assert flag_name("targ_min_us") == "min-us"
    assert flag_name("filter_pid") == "pid"
    assert flag_name("targ_") == "targ-"
    assert flag_name("verbose") == "verbose"
    docs = arg_docs(
        "/**\n * Multi\n * line.\n */\nconst volatile int a = 1;\n"
        "int x; /* not a doc */\nvolatile const unsigned b[4] = {};\n"
        "// one\nconst volatile bool c; // ignored: the comment above wins\n"
    )
    assert docs == {"a": "Multi line.", "b": "", "c": "one"}


def test_fallbacks_are_grouped_by_their_names() -> None:
    """`X_raw`, `X_tp2`, `X_raw_tp`, ... (libbpf-tools' habit) join program `X`, preferred
    first: `X`, then one suffix and digits if any (so `e_alt_alt` is `e_alt`'s, not `e`'s);
    `X` itself must be among the programs."""
    from ebpm.build.groups import group_programs
    from ebpm.package import ProgramSpec

    def spec(name: str) -> ProgramSpec:
        return ProgramSpec(name=name, section=f"uprobe/{name}", type="kprobe",
                           attach=f"/bin/true:{name}")  # (no shared hook: names alone group)

    names = ["a_tp2", "a", "a_raw_tp", "b_c_raw", "b_c", "b", "d_tp_x", "d", "_raw", "e_alt_alt",
             "e"]
    got = {p.name: p.group for p in group_programs([spec(n) for n in names])}
    assert got == {"a": "a", "a_tp2": "a", "a_raw_tp": "a", "b_c": "b_c", "b_c_raw": "b_c",
                   "b": "", "d_tp_x": "", "d": "", "_raw": "", "e": "", "e_alt_alt": ""}
