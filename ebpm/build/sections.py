"""libbpf's ELF section conventions: the program kind and attach target named by a section."""

from __future__ import annotations

from ebpm.record import record

__all__ = ["SectionKind", "classify", "hook_of"]

# (section prefix, kind, prefix-only) in libbpf's order of precedence. `prefix-only` sections
# take an attach target after a '/', the others are matched exactly (or with a '/' suffix).
_DEFS: tuple[tuple[str, str], ...] = (
    ("socket", "socket"),
    ("sk_reuseport/migrate", "sk_reuseport"),
    ("sk_reuseport", "sk_reuseport"),
    ("kprobe.multi", "kprobe.multi"),
    ("kretprobe.multi", "kretprobe.multi"),
    ("kprobe", "kprobe"),
    ("kretprobe", "kretprobe"),
    ("uprobe.s", "uprobe"),
    ("uprobe", "uprobe"),
    ("uretprobe.s", "uretprobe"),
    ("uretprobe", "uretprobe"),
    ("usdt", "usdt"),
    ("tc", "tc"),
    ("classifier", "tc"),
    ("action", "tc_action"),
    ("tracepoint", "tracepoint"),
    ("tp_btf", "tp_btf"),
    ("tp", "tracepoint"),
    ("raw_tracepoint.w", "raw_tracepoint"),
    ("raw_tp.w", "raw_tracepoint"),
    ("raw_tracepoint", "raw_tracepoint"),
    ("raw_tp", "raw_tracepoint"),
    ("fentry.s", "fentry"),
    ("fentry", "fentry"),
    ("fmod_ret.s", "fmod_ret"),
    ("fmod_ret", "fmod_ret"),
    ("fexit.s", "fexit"),
    ("fexit", "fexit"),
    ("freplace", "freplace"),
    ("lsm_cgroup", "lsm_cgroup"),
    ("lsm.s", "lsm"),
    ("lsm", "lsm"),
    ("iter.s", "iter"),
    ("iter", "iter"),
    ("syscall", "syscall"),
    ("xdp.frags", "xdp"),
    ("xdp", "xdp"),
    ("perf_event", "perf_event"),
    ("lwt_in", "lwt"),
    ("lwt_out", "lwt"),
    ("lwt_xmit", "lwt"),
    ("lwt_seg6local", "lwt"),
    ("sockops", "sockops"),
    ("sk_skb", "sk_skb"),
    ("sk_msg", "sk_msg"),
    ("lirc_mode2", "lirc_mode2"),
    ("flow_dissector", "flow_dissector"),
    ("cgroup_skb", "cgroup_skb"),
    ("cgroup/skb", "cgroup_skb"),
    ("cgroup", "cgroup"),
    ("struct_ops", "struct_ops"),
    ("sk_lookup", "sk_lookup"),
)

# Hooks reachable by several kinds, and which kind is preferred (lower rank first).
_HOOK_FAMILY = {
    "tp_btf": ("tracepoint", 0),
    "raw_tracepoint": ("tracepoint", 1),
    "tracepoint": ("tracepoint", 2),
    "fentry": ("entry", 0),
    "kprobe": ("entry", 1),
    "fexit": ("exit", 0),
    "kretprobe": ("exit", 1),
}


@record
class SectionKind:
    """What a section name says: the program kind, its attach target and autoload."""

    kind: str  # "tracepoint", "raw_tracepoint", "tp_btf", "kprobe", ..., or "" when unknown
    attach: str  # the part after the prefix and '/', e.g. "syscalls/sys_enter_openat"
    autoload: bool  # False for libbpf's "?section" (load on request only)


def classify(section: str) -> SectionKind:
    """Derive the program kind from a section name as libbpf's section table does."""
    autoload = not section.startswith("?")
    name = section.lstrip("?")
    for prefix, kind in _DEFS:
        if name == prefix:
            return SectionKind(kind, "", autoload)
        if name.startswith(prefix + "/"):
            return SectionKind(kind, name[len(prefix) + 1 :], autoload)
    return SectionKind("", "", autoload)


def hook_of(kind: str, attach: str) -> tuple[str, int] | None:
    """The hook a program reaches, as (family:target, preference rank), for grouping.

    Tracepoints are known by their event name (`sched/sched_switch`, `sched_switch` and
    `tp_btf/sched_switch` are one hook); kernel functions by name (`fentry/F` and `kprobe/F`).
    """
    family = _HOOK_FAMILY.get(kind)
    if family is None or not attach:
        return None
    target = attach.rsplit("/", 1)[-1].split("+", 1)[0]
    return f"{family[0]}:{target}", family[1]
