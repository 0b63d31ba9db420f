"""The fast call into a guest's (i32,i32,i32)->i32 function: unchecked, with reused raw values.

`Func.__call__` rebuilds the function type and converts every value on each call (~35 µs
here); an event callback runs once per event, so it goes through
`wasmtime_func_call_unchecked` with a raw-value array allocated once per callee, after the
callee's type was checked once (the unchecked call is safe only for the type we checked).
The C function is called through a ctypes function object of its own, without argument types
and with the error returned as an address: wasmtime's binding checks each argument against a
pointer type and wraps the result in a new pointer object on every call (1.6 against 0.5 µs a
call here); every argument passed is already the ctypes object the C side takes.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import Func, Table, Trap, ValType, WasmtimeError
from wasmtime import _ffi as ffi

__all__ = ["GuestFunction", "FunctionTable", "BadCallee"]

_I32 = str(ValType.i32())


class BadCallee(Exception):
    """The guest named a table entry that is missing or not an (i32,i32,i32)->i32 function."""


# wasmtime_func_call_unchecked as a bare ctypes function of its own: no argument types, the
# error as an address (None for none); args_and_results_len a size_t object, as passed so
_CALL_UNCHECKED = ffi.dll._FuncPtr(("wasmtime_func_call_unchecked", ffi.dll))
_CALL_UNCHECKED.restype = ctypes.c_void_p
_THREE = ctypes.c_size_t(3)


class GuestFunction:
    """One guest function of type (i32,i32,i32)->i32, callable at ~0.5 µs per call."""

    __slots__ = ("_func", "_fp", "_raw", "_args", "_trap", "_trap_ref", "_call")

    def __init__(self, func: Func) -> None:
        self._func = func  # keeps the wasmtime_func_t alive
        self._fp = ctypes.pointer(func._func)
        self._raw = (ffi.wasmtime_val_raw_t * 3)()
        self._args = (self._raw[0], self._raw[1], self._raw[2])  # views into _raw
        self._trap = ctypes.POINTER(ffi.wasm_trap_t)()
        self._trap_ref = ctypes.byref(self._trap)
        self._call = _CALL_UNCHECKED

    @staticmethod
    def check_type(func: Func, store: Any, what: str) -> None:
        ty = func.type(store)
        params = [str(p) for p in ty.params]
        results = [str(r) for r in ty.results]
        if params != [_I32] * 3 or results != [_I32]:
            raise BadCallee(
                f"{what}: expected (i32,i32,i32)->i32, got ({','.join(params)})->"
                f"({','.join(results)})"
            )

    def __call__(self, context: Any, a: int, b: int, c: int) -> int:
        """Call with the store context of the current host call (`caller._context()`)."""
        first, second, third = self._args
        first.i32 = a  # ctypes wraps to 32 bits: unsigned pointers pass unchanged
        second.i32 = b
        third.i32 = c
        error = self._call(context, self._fp, self._raw, _THREE, self._trap_ref)
        if error:
            raise WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))
        if self._trap:
            trap = Trap._from_ptr(self._trap)
            self._trap = ctypes.POINTER(ffi.wasm_trap_t)()
            self._trap_ref = ctypes.byref(self._trap)
            raise trap
        return int(first.i32)


class FunctionTable:
    """The guest's exported `__indirect_function_table`: C function pointers index into it."""

    def __init__(self, table: Table | None) -> None:
        self._table = table
        self._cache: dict[int, GuestFunction] = {}

    def get(self, store: Any, index: int) -> GuestFunction:
        fn = self._cache.get(index)
        if fn is not None:
            return fn
        if self._table is None:
            raise BadCallee("guest exports no __indirect_function_table (link with --export-table)")
        item = self._table.get(store, index)
        if not isinstance(item, Func):
            raise BadCallee(f"table entry {index}: not a function")
        GuestFunction.check_type(item, store, f"table entry {index}")
        fn = self._cache[index] = GuestFunction(item)
        return fn
