"""Build a wasm-bpf guest: `bpftool gen skeleton` of the BPF object, then app.c for wasm32-wasi.

This is the original design's gen-wasm-skel and build-wasm steps in one call. Debian's
bpftool has no wasm skeleton mode; its ordinary skeleton compiles against ebpm's guest SDK
(sdk/include: bpf/libbpf.h, bpf/bpf.h and wasm-bpf.h implement libbpf's skeleton API over the
wasm_bpf imports). Host headers are never searched (-nostdinc): only the SDK, clang's own
headers and wasi-libc's.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ebpm.build.toolchain import find_tool
from ebpm.errors import BuildError, CompileError, ToolMissingError
from ebpm.files import atomic_write

__all__ = ["APP_SOURCE", "WASI_INCLUDE", "sdk_include_dir", "guest_name", "build_guest"]

APP_SOURCE = "app.c"
WASI_INCLUDE = Path("/usr/include/wasm32-wasi")
WASI_LIBC = Path("/usr/lib/wasm32-wasi/libc.a")
_INSTALL_HINT = "apt install clang wasi-libc lld-14 libclang-rt-14-dev-wasm32"
_DIAG = re.compile(r"^[^:\s]+:\d+:\d+: (?:fatal )?error: ")


def sdk_include_dir() -> Path:
    """The guest SDK's include directory (pass it with -isystem when building by hand)."""
    return Path(__file__).resolve().parent / "sdk" / "include"


def guest_name(object_path: Path) -> str:
    """The package's name from its object: NAME.bpf.o -> NAME (the skeleton is NAME.skel.h)."""
    name = object_path.name
    for suffix in (".o", ".bpf"):
        name = name.removesuffix(suffix)
    return name


def _tool(name: str) -> str:
    """toolchain's lookup (versioned names, /usr/sbin), with the wasm guest's install hint."""
    try:
        return find_tool(name)
    except ToolMissingError as err:
        raise ToolMissingError(f"building the wasm guest: {err.message}",
                               hint=_INSTALL_HINT) from err


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        diagnostics = tuple(line for line in output.splitlines() if _DIAG.match(line))
        first = diagnostics[0] if diagnostics else (output.splitlines() or ["failed"])[-1]
        raise CompileError(f"{what}: {first}", diagnostics=diagnostics, output=output)
    return proc.stdout


def build_guest(
    directory: str | Path,
    object_path: str | Path,
    *,
    output: str | Path | None = None,
    sources: Sequence[str | Path] = (APP_SOURCE,),
    cflags: Sequence[str] = (),
    strip: bool = True,
) -> Path:
    """Compile the package's app.c (with `object_path` embedded through its skeleton) to wasm.

    `directory` holds app.c and the headers it includes; the skeleton NAME.skel.h is written
    next to the object, and the module to `output` (default: NAME.wasm next to the object,
    where `ebpm build` packs it from). Returns the module's path.
    """
    directory = Path(directory)
    object_path = Path(object_path)
    srcs = [Path(s) if Path(s).is_absolute() else directory / s for s in sources]
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise BuildError(
            f"building the wasm guest: {', '.join(missing)} not found",
            hint="a wasm package has an app.c beside its NAME.bpf.c (see docs/wasm.md)",
        )
    if not object_path.is_file():
        raise BuildError(
            f"building the wasm guest: {object_path} not found", hint="compile NAME.bpf.c first"
        )
    if not WASI_INCLUDE.is_dir() or not WASI_LIBC.is_file():
        raise ToolMissingError(
            "building the wasm guest: wasi-libc not installed", hint=_INSTALL_HINT
        )
    clang, bpftool = _tool("clang"), _tool("bpftool")
    name = guest_name(object_path)
    build_dir = object_path.parent
    skeleton = _run([bpftool, "gen", "skeleton", str(object_path)], f"bpftool gen skeleton {name}")
    # replaced whole: a compiler reading it meanwhile sees the old or the new file
    atomic_write(build_dir / f"{name}.skel.h", skeleton)
    resource = _run([clang, "-print-resource-dir"], "clang -print-resource-dir").strip()
    out = Path(output) if output is not None else build_dir / f"{name}.wasm"
    cmd = [
        clang, "--target=wasm32-wasi", "-O2", "-Wall",
        "-nostdinc", "-isystem", str(sdk_include_dir()), "-isystem", f"{resource}/include",
        "-isystem", str(WASI_INCLUDE), "-I", str(build_dir), "-I", str(directory),
        *cflags, "-Wl,--export-table", *(["-Wl,--strip-all"] if strip else []),
        "-o", str(out), *map(str, srcs),
    ]
    _run(cmd, f"compiling the wasm guest {name}")
    return out
