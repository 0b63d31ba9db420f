"""Architectures: a machine's name (`uname -m`) and libbpf's `__TARGET_ARCH_` name for it.

`ebpm build` compiles for a target arch (`[build] arch`, default this machine's) and records it
in the package's `requirements.arch`; a run compares that with the machine it is on. Earlier
builds recorded the build machine's `uname -m` (x86_64, aarch64), so a machine answers to both
names.
"""

from __future__ import annotations

__all__ = ["TARGET_ARCHES", "machine_names", "runs_on", "target_arch_of"]

# uname -m -> the __TARGET_ARCH_* that libbpf's bpf_tracing.h knows
_TARGETS = {
    "x86_64": "x86", "amd64": "x86", "i686": "x86", "i386": "x86",
    "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm",
    "ppc64le": "powerpc", "ppc64": "powerpc", "s390x": "s390", "riscv64": "riscv",
    "loongarch64": "loongarch", "mips64": "mips", "mips": "mips", "sparc64": "sparc",
}
TARGET_ARCHES = tuple(sorted(set(_TARGETS.values())))  # what `[build] arch` may say


def target_arch_of(machine: str) -> str | None:
    """The `__TARGET_ARCH_*` suffix for machine `machine` (x86_64 -> x86), None if unknown."""
    return _TARGETS.get(machine)


def machine_names(machine: str) -> frozenset[str]:
    """Every name a package's `requirements.arch` may give this machine: its `uname -m`, its
    target arch, and the other spellings of that machine (amd64 for x86_64)."""
    target = _TARGETS.get(machine)
    if target is None:
        return frozenset({machine})
    # x86_64 and amd64 are one machine; i686 is another one that libbpf also calls x86
    same = {"x86_64": {"amd64"}, "amd64": {"x86_64"}, "aarch64": {"arm64"}}.get(machine, set())
    return frozenset({machine, target, *same})


def runs_on(arch: tuple[str, ...], machine: str) -> bool:
    """Whether a package whose `requirements.arch` is `arch` runs on `machine` (no arch: any)."""
    return not arch or bool(machine_names(machine) & set(arch))
