"""The external build tools (clang, llvm-strip, bpftool): finding them and running them."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ebpm.arches import TARGET_ARCHES, target_arch_of
from ebpm.errors import BuildError, CompileError, ToolMissingError

__all__ = [
    "INSTALL_HINTS",
    "find_tool",
    "run_tool",
    "target_arch",
    "clang_version",
    "bpf_cflags",
    "bpf_target",
    "compile_bpf",
    "diagnostics",
]

# tool -> the Debian package that provides it
INSTALL_HINTS = {
    "clang": "apt-get install clang",
    "llvm-strip": "apt-get install llvm",
    "llvm-objcopy": "apt-get install llvm",
    "bpftool": "apt-get install bpftool",
}
_VERSIONED = ("19", "18", "17", "16", "15", "14")

_DIAG = re.compile(r"^(?P<loc>[^\s:][^:]*:\d+(?::\d+)?): (?P<sev>fatal error|error): (?P<msg>.*)$")


def find_tool(name: str) -> str:
    """The path of `name` on PATH (or of a versioned `name-NN`), else ToolMissingError."""
    found = shutil.which(name)
    if found is None:
        found = next(
            (p for p in (shutil.which(f"{name}-{v}") for v in _VERSIONED) if p is not None), None
        )
    if found is None and _standard_path():
        # Debian puts bpftool in /usr/sbin, which a non-root user's PATH lacks.
        for sbin in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
            if os.access(Path(sbin) / name, os.X_OK):
                found = str(Path(sbin) / name)
                break
    if found is None:
        raise ToolMissingError(
            f"{name}: not found on PATH", hint=INSTALL_HINTS.get(name, f"install {name}")
        )
    return found


def _standard_path() -> bool:
    # A PATH without /usr/bin is deliberate: then look nowhere else.
    return "/usr/bin" in os.environ.get("PATH", "").split(os.pathsep)


def run_tool(
    argv: Sequence[str], *, cwd: Path | None = None, what: str, stdout_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool; a non-zero exit becomes a BuildError quoting its last lines of stderr."""
    try:
        if stdout_path is not None:
            with open(stdout_path, "w") as out:
                proc = subprocess.run(
                    list(argv), cwd=cwd, stdout=out, stderr=subprocess.PIPE, text=True,
                    check=False,
                )
        else:
            proc = subprocess.run(
                list(argv), cwd=cwd, capture_output=True, text=True, check=False
            )
    except FileNotFoundError as err:
        tool = Path(argv[0]).name
        raise ToolMissingError(f"{tool}: {err.strerror}", hint=INSTALL_HINTS.get(tool)) from err
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise BuildError(f"{what}: {Path(argv[0]).name} exited with {proc.returncode}: {tail}")
    return proc


def target_arch(machine: str | None = None) -> str:
    """The `__TARGET_ARCH_*` suffix for this machine (x86, arm64, ...)."""
    machine = machine or platform.machine()
    arch = target_arch_of(machine)
    if arch is None:
        raise BuildError(
            f"target arch: no __TARGET_ARCH_ known for machine {machine!r}",
            hint=f"set [build] arch in ebpm.toml (one of {', '.join(TARGET_ARCHES)})",
        )
    return arch


def clang_version(clang: str) -> str:
    """`14.0.6` from `clang --version`, or '' when it cannot be read."""
    proc = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"clang version (\S+)", proc.stdout)
    return m.group(1) if m else ""


_BIG_ENDIAN = frozenset({"s390", "sparc"})


def bpf_target(arch: str) -> str:
    """clang's BPF target for `arch`: s390 and sparc are big-endian only, and their kernels
    load big-endian BPF (bpfeb); the others as this machine's byte order (bpf), which for
    powerpc and mips, either way, is the order of a build on such a machine."""
    return "bpfeb" if arch in _BIG_ENDIAN else "bpf"


def bpf_cflags(arch: str) -> list[str]:
    """The flags every ebpm object is built with (CO-RE, BTF, BPF ISA v3), plus the host's
    multiarch include directory, so that sources using <linux/bpf.h> (libbpf-bootstrap's
    `minimal`) find <asm/types.h> as they do with upstream's Makefiles."""
    flags = ["-g", "-O2", "-target", bpf_target(arch), "-mcpu=v3", f"-D__TARGET_ARCH_{arch}"]
    import os

    multiarch = f"/usr/include/{os.uname().machine}-linux-gnu"
    if os.path.isdir(multiarch):
        flags.append(f"-idirafter{multiarch}")
    return flags


def diagnostics(stderr: str) -> tuple[str, ...]:
    """The `file:line:col: error: message` lines of a clang run."""
    out = []
    for line in stderr.splitlines():
        m = _DIAG.match(line.strip())
        if m:
            out.append(f"{m.group('loc')}: {m.group('sev')}: {m.group('msg')}")
    return tuple(out)


def compile_bpf(
    clang: str, source: Path, output: Path, *, cwd: Path, flags: Sequence[str]
) -> None:
    """Compile one C file to a BPF object; compiler errors become a CompileError."""
    argv = [clang, *flags, "-c", str(source), "-o", str(output)]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return
    diags = diagnostics(proc.stderr)
    shown = diags[:10] or tuple(proc.stderr.strip().splitlines()[-10:])
    more = f"\n(and {len(diags) - 10} more)" if len(diags) > 10 else ""
    count = f"{len(diags)} error{'s' if len(diags) != 1 else ''}" if diags else "failed"
    raise CompileError(
        f"compile {source.name}: {count}\n" + "\n".join(shown) + more,
        hint="fix the source and run `ebpm build` again",
        diagnostics=diags,
        output=proc.stderr,
    )
