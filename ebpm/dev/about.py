"""What this machine runs ebpm with: the versions `ebpm version` shows (like `docker version`)."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Component", "components"]


@dataclass(frozen=True)
class Component:
    name: str
    version: str  # "" when missing
    detail: str = ""  # where it comes from, or why it is missing


def _libbpf() -> Component:
    try:
        from ebpm.loader.libbpf.library import version

        return Component("libbpf", version().lstrip("v"), "libbpf.so.1 (ctypes)")
    except Exception as err:  # a missing library is an answer here, not an error
        return Component("libbpf", "", f"not loadable: {err}")


def _package(dist: str) -> Component:
    from importlib import metadata

    try:
        return Component(dist, metadata.version(dist), "Python package")
    except metadata.PackageNotFoundError:
        return Component(dist, "", "not installed")


def _tool(name: str, args: tuple[str, ...] = ("--version",)) -> Component:
    path = shutil.which(name)
    if path is None:
        return Component(name, "", "not on PATH")
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        return Component(name, "", str(err))
    first = out.strip().splitlines()[0] if out.strip() else ""
    words = [w for w in first.replace(",", " ").split()
             if w[:1].isdigit() or (w[:1] == "v" and w[1:2].isdigit())]
    return Component(name, words[0].lstrip("v") if words else first, path)


def components() -> list[Component]:
    """ebpm, Python, the kernel, libbpf, wasmtime, clang and bpftool, in that order."""
    from ebpm import __version__

    return [
        Component("ebpm", __version__, sys.executable),
        Component("python", platform.python_version(), platform.python_implementation()),
        Component("kernel", platform.release(), f"{platform.system()} {platform.machine()}"),
        _libbpf(),
        _package("wasmtime"),
        _tool("clang"),
        _tool("bpftool"),
    ]
