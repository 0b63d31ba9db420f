"""The wasm host reaches into wasmtime's private FFI: an incompatible wasmtime must fail here,
loudly and by name, not somewhere inside a guest run."""

from __future__ import annotations

import importlib.metadata

import pytest

# what ebpm/loader/wasm/host.py and callback.py use beyond wasmtime's public API
PRIVATE_FFI = (
    "wasmtime_context_t",
    "wasmtime_update_deadline_kind_t",
    "wasmtime_error_new",
    "wasmtime_store_epoch_deadline_callback",
    "wasmtime_val_raw_t",
    "wasm_trap_t",
    "wasmtime_func_call_unchecked",
)
PRIVATE_METHODS = (("WasmtimeError", "_from_ptr"), ("Trap", "_from_ptr"),
                   ("Caller", "_context"))


def _requirement() -> str:
    reqs = importlib.metadata.requires("ebpm") or []
    found = [r for r in reqs if r.split(";")[0].strip().startswith("wasmtime")]
    assert found, "ebpm's metadata declares no wasmtime requirement"
    return found[0].split(";")[0].strip()


def test_installed_wasmtime_is_a_tested_major() -> None:
    from packaging.requirements import Requirement

    requirement = Requirement(_requirement())
    installed = importlib.metadata.version("wasmtime")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"wasmtime {installed} is installed, but ebpm is tested with {requirement}: the wasm host "
        "uses wasmtime's private FFI, so run the wasm tests against the new major and widen the "
        "bound in pyproject.toml"
    )
    upper = [s for s in requirement.specifier if s.operator in ("<", "<=")]
    assert upper, f"the wasmtime requirement {requirement} has no upper bound"


@pytest.mark.parametrize("name", PRIVATE_FFI)
def test_private_ffi_symbols_exist(name: str) -> None:
    from wasmtime import _ffi

    assert hasattr(_ffi, name), (
        f"wasmtime {importlib.metadata.version('wasmtime')} has no _ffi.{name}, which the ebpm "
        "wasm host calls: this wasmtime is incompatible (see pyproject.toml's bound)"
    )


@pytest.mark.parametrize(("cls", "attr"), PRIVATE_METHODS)
def test_private_methods_exist(cls: str, attr: str) -> None:
    import wasmtime

    assert hasattr(getattr(wasmtime, cls), attr), (
        f"wasmtime {importlib.metadata.version('wasmtime')}: {cls}.{attr} is gone; the ebpm wasm "
        "host needs it (this wasmtime is incompatible)"
    )


def test_func_keeps_its_raw_handle() -> None:
    import wasmtime

    store = wasmtime.Store()
    func = wasmtime.Func(store, wasmtime.FuncType([], []), lambda: None)
    assert hasattr(func, "_func"), "wasmtime.Func has no _func handle (used by the callback path)"
