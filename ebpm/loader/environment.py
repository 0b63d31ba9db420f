"""Checks before loading: privileges, kernel BTF and tracefs (mounted here when we may).

(Paths as strings, not pathlib: `ebpm run` imports this while libbpf loads, and pathlib with
urllib.parse costs ~1.5 ms of the main thread's time there.)"""

from __future__ import annotations

import ctypes
import os

from ebpm.arches import runs_on, target_arch_of
from ebpm.errors import ArchitectureError, MissingFeatureError, PrivilegeError
from ebpm.package import Requirements
from ebpm.record import record

__all__ = [
    "Environment",
    "check_environment",
    "check_requirements",
    "ensure_tracefs",
    "ensure_bpffs",
    "has_capabilities",
    "kernel_version",
]

TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BPFFS = "/sys/fs/bpf"

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


@record
class Environment:
    kernel: str
    btf: bool
    tracefs: str  # the mounted tracefs path, "" when none
    mounted_tracefs: bool  # we mounted it just now


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def _effective_caps() -> int:
    try:
        for line in _read_lines("/proc/self/status"):
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def has_capabilities() -> bool:
    """CAP_BPF with CAP_PERFMON (kernel 5.8+), or CAP_SYS_ADMIN."""
    caps = _effective_caps()
    if caps & (1 << CAP_SYS_ADMIN):
        return True
    return bool(caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON))


def _tracefs_mounted() -> str:
    try:
        mounts = _read_lines("/proc/self/mounts")
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "tracefs":
            if parts[1] in (TRACEFS, DEBUGFS_TRACING):
                return parts[1]
    return ""


def _mount(source: str, target: str, fstype: str) -> int:
    """mount(2); 0 or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    libc.mount.restype = ctypes.c_int
    ret = libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None)
    return ctypes.get_errno() if ret != 0 else 0


def ensure_tracefs() -> tuple[str, bool]:
    """Mount tracefs at /sys/kernel/tracing when it is missing; returns (path, mounted now)."""
    path = _tracefs_mounted()
    if path:
        return path, False
    err = _mount("tracefs", TRACEFS, "tracefs")
    if err:
        raise MissingFeatureError(
            "tracefs",
            detail=f"not mounted, and mounting it failed: {os.strerror(err)}",
            hint=f"run: sudo mount -t tracefs tracefs {TRACEFS}",
        )
    return TRACEFS, True


def _is_bpffs(path: str) -> bool:
    try:
        mounts = _read_lines("/proc/self/mounts")
    except OSError:
        return False
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[1] == path and fields[2] == "bpf":
            return True
    return False


def ensure_bpffs(path: str | os.PathLike[str] = BPFFS) -> bool:
    """Mount bpffs at `path` (default /sys/fs/bpf) when it is not mounted there; returns
    whether it was mounted now. Pins live in bpffs."""
    path = os.fspath(path)
    if _is_bpffs(path):
        return False
    err = _mount("bpf", path, "bpf")
    if err:
        raise MissingFeatureError(
            "bpffs", detail=f"{path} is not mounted, and mounting it failed: {os.strerror(err)}",
            hint=f"run: sudo mount -t bpf bpf {path}")
    return True


def kernel_version(release: str) -> tuple[int, ...]:
    """`6.1.0-18-amd64` -> (6, 1, 0)."""
    parts = []
    for piece in release.split("-", 1)[0].split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_requirements(req: Requirements, *, name: str = "", release: str = "",
                       machine: str = "") -> None:
    """The package's declared minimum kernel and architectures against this machine."""
    release = release or os.uname().release
    machine = machine or os.uname().machine
    if req.kernel and kernel_version(release) < kernel_version(req.kernel):
        raise MissingFeatureError(
            f"kernel {req.kernel}",
            detail=f"the package needs Linux {req.kernel} or later, this is {release}",
            hint="run it on a newer kernel",
        )
    if not runs_on(req.arch, machine):
        wanted = " or ".join(req.arch)
        here = target_arch_of(machine)
        rebuild = (f'`ebpm build` with [build] arch = "{here}" (or none)' if here
                   else "`ebpm build` on it, without [build] arch")
        raise ArchitectureError(
            f"{name or 'the package'}: built for {wanted}, and this machine is {machine}",
            wanted=req.arch, machine=machine,
            hint=f"run it on {wanted}, or build it for this machine: {rebuild}",
        )


def check_environment(*, need_tracefs: bool = True, need_btf: bool = True) -> Environment:
    """Privileges, kernel BTF, tracefs: raise with what to run when something is missing."""
    if not has_capabilities():
        raise PrivilegeError(
            "loading BPF programs needs CAP_BPF and CAP_PERFMON (or root)",
            hint="run it with sudo: sudo ebpm run ... (the store of the invoking user is used)",
        )
    btf = os.path.exists(VMLINUX_BTF)
    if need_btf and not btf:
        raise MissingFeatureError(
            "BTF",
            detail=f"{VMLINUX_BTF} is missing; CO-RE programs need the kernel's type information",
            hint="use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020)",
        )
    tracefs, mounted = ensure_tracefs() if need_tracefs else (_tracefs_mounted(), False)
    return Environment(kernel=os.uname().release, btf=btf, tracefs=tracefs, mounted_tracefs=mounted)
