"""Which BPF program types a WebAssembly guest may load: tracing by default, the rest by flag."""

from __future__ import annotations

from collections.abc import Iterable

from ebpm.record import record

__all__ = ["TRACING", "XDP", "TC", "CGROUP", "OTHER", "ALL", "CATEGORIES", "ProgramPolicy"]

TRACING = "tracing"
XDP = "xdp"
TC = "tc"
CGROUP = "cgroup"
OTHER = "other"  # socket filters, lsm, struct_ops, freplace, fmod_ret...: only with "all"
ALL = "all"
CATEGORIES = (TRACING, XDP, TC, CGROUP, OTHER, ALL)

# libbpf's names of enum bpf_prog_type (libbpf_bpf_prog_type_str) -> category
_BY_TYPE = {
    "kprobe": TRACING,  # kprobes and uprobes
    "tracepoint": TRACING,
    "raw_tracepoint": TRACING,
    "perf_event": TRACING,
    "tracing": TRACING,  # fentry/fexit/tp_btf/iter; fmod_ret is excepted below
    "xdp": XDP,
    "sched_cls": TC,
    "sched_act": TC,
    "cgroup_skb": CGROUP,
    "cgroup_sock": CGROUP,
    "cgroup_device": CGROUP,
    "sock_ops": CGROUP,
    "cgroup_sock_addr": CGROUP,
    "cgroup_sysctl": CGROUP,
    "cgroup_sockopt": CGROUP,
}


def category(type_name: str, section: str = "") -> str:
    """The policy category of a program of libbpf type `type_name` in ELF section `section`."""
    if section.startswith("fmod_ret"):  # changes return values: not mere tracing
        return OTHER
    return _BY_TYPE.get(type_name, OTHER)


@record
class ProgramPolicy:
    """The set of program categories a guest may load (`all` allows every type)."""

    allowed: frozenset[str] = frozenset({TRACING})

    @classmethod
    def of(cls, allow: Iterable[str]) -> ProgramPolicy:
        from ebpm.errors import UsageError

        allowed = frozenset(a.strip().lower() for a in allow)
        unknown = sorted(allowed - set(CATEGORIES))
        if unknown:
            raise UsageError(
                f"wasm policy: unknown program category {', '.join(unknown)}",
                hint=f"choose from {', '.join(CATEGORIES)}",
            )
        return cls(allowed | {TRACING})

    def allows(self, type_name: str, section: str = "") -> bool:
        return ALL in self.allowed or category(type_name, section) in self.allowed

    def refusal(self, program: str, type_name: str, section: str) -> str | None:
        """Why `program` may not load, or None when it may."""
        if self.allows(type_name, section):
            return None
        cat = category(type_name, section)
        return (
            f"program {program} (type {type_name}, section {section}) is a {cat} program; "
            f"this guest may load only {', '.join(sorted(self.allowed))} programs"
        )
