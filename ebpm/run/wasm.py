"""The wasm run: a package's own WebAssembly userspace loads its BPF object and prints."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ebpm.errors import UsageError
from ebpm.run.source import LocalPackage

__all__ = ["run_wasm"]


def run_wasm(
    pkg: LocalPackage, *, args: Sequence[str] = (), duration: float | None = None,
    allow_types: Sequence[str] = ("tracing",), stop: threading.Event | None = None,
) -> int:
    """Run the package's WebAssembly userspace (it loads the BPF object itself); its status."""
    if pkg.wasm is None:
        raise UsageError(f"{pkg.config.name}: the package has no WebAssembly userspace")
    from ebpm.loader.environment import check_environment, check_requirements
    from ebpm.loader.wasm import run_module

    check_requirements(pkg.config.requirements)
    check_environment(need_btf=pkg.config.requirements.btf)
    return int(run_module(pkg.wasm, args=list(args), name=pkg.config.name,
                          allow_types=tuple(allow_types), duration=duration, stop=stop))
