"""The WebAssembly userspace host: runs wasm-bpf guests on wasmtime (built by ebpm.build.guest).

Public API (imported lazily, so that importing this package costs nothing until used):

    run_module(wasm, *, args, allow_types=("tracing",), duration=None, ...) -> int
    run_guest(...) -> RunResult            # the same, with stop reason, events and timings
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ebpm.loader.wasm.host import RunResult, run_guest, run_module

__all__ = ["run_module", "run_guest", "RunResult"]

_LAZY = {
    "run_module": "ebpm.loader.wasm.host",
    "run_guest": "ebpm.loader.wasm.host",
    "RunResult": "ebpm.loader.wasm.host",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
