"""The WebAssembly userspace host: runs wasm-bpf guests on wasmtime, and builds them from C.

Public API (imported lazily, so that importing this package costs nothing until used):

    run_module(wasm, *, args, allow_types=("tracing",), duration=None, ...) -> int
    run_guest(...) -> RunResult            # the same, with stop reason, events and timings
    build_guest(directory, object_path) -> Path   # app.c + NAME.bpf.o -> NAME.wasm
    sdk_include_dir() -> Path              # the guest SDK headers (bpf/libbpf.h, wasm-bpf.h)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ebpm.loader.wasm.guest_build import build_guest, sdk_include_dir
    from ebpm.loader.wasm.host import RunResult, run_guest, run_module

__all__ = ["run_module", "run_guest", "RunResult", "build_guest", "sdk_include_dir"]

_LAZY = {
    "run_module": "ebpm.loader.wasm.host",
    "run_guest": "ebpm.loader.wasm.host",
    "RunResult": "ebpm.loader.wasm.host",
    "build_guest": "ebpm.loader.wasm.guest_build",
    "sdk_include_dir": "ebpm.loader.wasm.guest_build",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
