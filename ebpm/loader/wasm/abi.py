"""The wasm-bpf host ABI: the six "wasm_bpf" imports and TinyGo's "callback-wrapper" poll.

Exactly the upstream types (eunomia-bpf/wasm-bpf), so modules built for it run unmodified, and
the stricter behaviour the upstream hosts lack: every guest pointer and size is bounds-checked
(i32 read as unsigned), every event is delivered, GET_NEXT_KEY gets a real NULL key, per-CPU
values are sized per CPU, and the ELF is copied out of guest memory before libbpf sees it.
Failures come back to the guest as the upstream hosts return them (0 handle, negative errno).
"""

from __future__ import annotations

import ctypes
import errno
import time
from collections.abc import Callable
from typing import Any

from wasmtime import Func, FuncType, Linker, Memory, Table, ValType

from ebpm import log
from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.wasm.callback import BadCallee, FunctionTable, GuestFunction
from ebpm.loader.wasm.guest_memory import GuestFault, GuestMemory, u32
from ebpm.loader.wasm.objects import FD_VALUE_MAPS, EventBuffer, GuestObjects, Refused

__all__ = ["WasmBpfAbi", "MODULE", "TINYGO_MODULE", "EXTENSION_MODULE"]

MODULE = "wasm_bpf"
TINYGO_MODULE = "callback-wrapper"
TINYGO_CALLBACK = "go-callback"
EXTENSION_MODULE = "ebpm"

_log = log.get("ebpm.wasm")

LOOKUP, UPDATE, DELETE, GET_NEXT_KEY = 1, 2, 3, 4
_SLICE_MS = 100  # a blocked poll wakes this often to notice a stop request


class WasmBpfAbi:
    """The host side of one guest: its imports, bound to its kernel objects and stop flag."""

    def __init__(self, objects: GuestObjects, should_stop: Callable[[], bool]) -> None:
        """`should_stop()` turns true when the run is asked to end: polls then return -EINTR."""
        self.objects = objects
        self._should_stop = should_stop
        self._memory: GuestMemory | None = None
        self._table: FunctionTable | None = None
        self._go_callback: GuestFunction | None = None
        self.delivered = 0
        self.last_delivery = 0.0  # time.perf_counter() when the last event reached the guest
        self.faults = 0
        self._drained: set[int] = set()  # buffers emptied once after the stop request

    # -- linking -------------------------------------------------------------------------

    def define(self, linker: Linker) -> None:
        i32, i64 = ValType.i32(), ValType.i64()
        defs: list[tuple[str, str, list[ValType], list[ValType], Callable[..., Any]]] = [
            (MODULE, "wasm_load_bpf_object", [i32, i32], [i64], self.load_bpf_object),
            (MODULE, "wasm_close_bpf_object", [i64], [i32], self.close_bpf_object),
            (MODULE, "wasm_attach_bpf_program", [i64, i32, i32], [i32], self.attach_bpf_program),
            (MODULE, "wasm_bpf_buffer_poll", [i64, i32, i32, i32, i32, i32, i32], [i32],
             self.buffer_poll),
            (MODULE, "wasm_bpf_map_fd_by_name", [i64, i32], [i32], self.map_fd_by_name),
            (MODULE, "wasm_bpf_map_operate", [i32, i32, i32, i32, i32, i64], [i32],
             self.map_operate),
            (TINYGO_MODULE, "wasm_bpf_buffer_poll", [i64, i32, i32, i32, i32, i32], [i32],
             self.tinygo_buffer_poll),
            (EXTENSION_MODULE, "num_possible_cpus", [], [i32], self.num_possible_cpus),
        ]
        for module, name, params, results, fn in defs:
            linker.define_func(module, name, FuncType(params, results), fn, access_caller=True)

    def _mem(self, caller: Any) -> GuestMemory:
        if self._memory is None:
            memory = caller.get("memory")
            if not isinstance(memory, Memory):
                raise GuestFault("guest exports no memory")
            self._memory = GuestMemory(memory)
        return self._memory

    def _functions(self, caller: Any) -> FunctionTable:
        if self._table is None:
            table = caller.get("__indirect_function_table")
            self._table = FunctionTable(table if isinstance(table, Table) else None)
        return self._table

    def _fail(self, call: str, err: Exception, code: int) -> int:
        if isinstance(err, GuestFault):
            self.faults += 1
        _log.warning("wasm guest: %s: %s", call, err)
        return code

    # -- objects and programs ------------------------------------------------------------

    def load_bpf_object(self, caller: Any, obj_buf: int, obj_buf_sz: int) -> int:
        try:
            elf = self._mem(caller).read(caller, obj_buf, obj_buf_sz)  # a copy: see facts
            return self.objects.load(elf)
        except Refused as err:
            self.objects.refusals.append(str(err))
            return self._fail("load BPF object", err, 0)
        except LoadError as err:
            self.objects.errors.append(err)
            return self._fail("load BPF object", err, 0)
        except GuestFault as err:
            return self._fail("load BPF object", err, 0)

    def close_bpf_object(self, caller: Any, obj: int) -> int:
        try:
            self.objects.close(obj)
            return 0
        except LoadError as err:
            return self._fail("close BPF object", err, -errno.EINVAL)

    def attach_bpf_program(self, caller: Any, obj: int, name: int, target: int) -> int:
        try:
            mem = self._mem(caller)
            prog = mem.cstring(caller, name)
            where = mem.cstring(caller, target)
            self.objects.attach(obj, prog, where)
            return 0
        except GuestFault as err:
            return self._fail("attach", err, -errno.EFAULT)
        except LoadError as err:
            code = err.errno or errno.EINVAL
            if code != errno.EOPNOTSUPP:
                self.objects.errors.append(err)
            return self._fail("attach", err, -code)
        except OSError as err:  # opening a cgroup path
            return self._fail("attach", err, -(err.errno or errno.EINVAL))

    def map_fd_by_name(self, caller: Any, obj: int, name: int) -> int:
        try:
            return self.objects.map_fd(obj, self._mem(caller).cstring(caller, name))
        except GuestFault as err:
            return self._fail("map fd by name", err, -errno.EFAULT)
        except LoadError as err:
            return self._fail("map fd by name", err, -(err.errno or errno.ENOENT))

    def num_possible_cpus(self, caller: Any) -> int:
        return self.objects.num_possible_cpus()

    # -- maps ----------------------------------------------------------------------------

    def map_operate(
        self, caller: Any, fd: int, cmd: int, key: int, value: int, next_key: int, flags: int
    ) -> int:
        try:
            _, m = self.objects.map_of_fd(fd)
        except LoadError as err:
            return self._fail("map operate", err, -errno.EBADF)
        lib = libbpf.lib()
        try:
            mem = self._mem(caller)
            ks = m.key_size

            def key_at(ptr: int) -> int | None:  # maps without keys (queue, stack): NULL
                return mem.address(caller, ptr, ks) if ks else None

            if cmd == LOOKUP:
                k = key_at(key)
                v = mem.address(caller, value, self.objects.value_size(m))
                return int(lib.bpf_map_lookup_elem(fd, k, v))
            if cmd == UPDATE:
                if m.type_name in FD_VALUE_MAPS:
                    refusal = PermissionError(f"a guest may not write fds into a {m.type_name} map")
                    return self._fail(f"map {m.name}: update", refusal, -errno.EPERM)
                k = key_at(key)
                v = mem.address(caller, value, self.objects.value_size(m))
                return int(lib.bpf_map_update_elem(fd, k, v, flags & 0xFFFFFFFFFFFFFFFF))
            if cmd == DELETE:
                return int(lib.bpf_map_delete_elem(fd, key_at(key)))
            if cmd == GET_NEXT_KEY:
                # NULL asks for the first key: the kernel gets a real NULL, not guest address 0
                k = None if u32(key) == 0 else key_at(key)
                return int(lib.bpf_map_get_next_key(fd, k, mem.address(caller, next_key, ks)))
        except GuestFault as err:
            return self._fail(f"map {m.name}: command {cmd}", err, -errno.EFAULT)
        return self._fail(f"map {m.name}", ValueError(f"unknown command {cmd}"), -errno.EINVAL)

    # -- event buffers -------------------------------------------------------------------

    def buffer_poll(
        self, caller: Any, obj: int, fd: int, sample_func: int, ctx: int, data: int,
        max_size: int, timeout_ms: int,
    ) -> int:
        try:
            fn = self._functions(caller).get(caller, u32(sample_func))
        except BadCallee as err:
            return self._fail("buffer poll", err, -errno.EINVAL)
        return self._poll(caller, obj, fd, fn, ctx, data, max_size, timeout_ms)

    def tinygo_buffer_poll(
        self, caller: Any, obj: int, fd: int, ctx: int, data: int, max_size: int, timeout_ms: int
    ) -> int:
        if self._go_callback is None:
            func = caller.get(TINYGO_CALLBACK)
            if not isinstance(func, Func):
                return self._fail("buffer poll", BadCallee("no go-callback export"), -errno.EINVAL)
            try:
                GuestFunction.check_type(func, caller, TINYGO_CALLBACK)
            except BadCallee as err:
                return self._fail("buffer poll", err, -errno.EINVAL)
            self._go_callback = GuestFunction(func)
        return self._poll(caller, obj, fd, self._go_callback, ctx, data, max_size, timeout_ms)

    def _poll(
        self, caller: Any, obj: int, fd: int, fn: GuestFunction, ctx: int, data: int,
        max_size: int, timeout_ms: int,
    ) -> int:
        stopping = self._should_stop()
        if stopping and fd in self._drained:
            return -errno.EINTR
        cap = u32(max_size)
        try:
            mem = self._mem(caller)
            mem.address(caller, data, cap)
            buf = self.objects.buffer(obj, fd)
        except GuestFault as err:
            return self._fail("buffer poll", err, -errno.EFAULT)
        except LoadError as err:
            return self._fail("buffer poll", err, -(err.errno or errno.EINVAL))
        try:
            if stopping or (not buf.pending and not self._wait(buf, timeout_ms)):
                # Once, when asked to stop: hand over what the kernel holds now, so no event
                # already recorded is lost; every later poll of this buffer says -EINTR.
                self._drained.add(fd)
                buf.poll(0)
                if not buf.pending:
                    return -errno.EINTR
        except LoadError as err:  # the kernel's poll failed: the guest decides what to do
            return self._fail("buffer poll", err, -(err.errno or errno.EIO))
        return self._deliver(caller, mem, buf, fn, ctx, data, cap)

    def _wait(self, buf: EventBuffer, timeout_ms: int) -> bool:
        """Poll in short slices until a record, the timeout, or a stop (then False)."""
        end = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        while True:
            left = _SLICE_MS if end is None else int((end - time.monotonic()) * 1000)
            buf.poll(max(0, min(_SLICE_MS, left)))
            if buf.pending:
                return True
            if self._should_stop():
                return False
            if end is not None and time.monotonic() >= end:
                return True

    def _deliver(
        self, caller: Any, mem: GuestMemory, buf: EventBuffer, fn: GuestFunction, ctx: int,
        data: int, cap: int,
    ) -> int:
        context = caller._context()
        pending = buf.pending
        memmove = ctypes.memmove
        count = ret = 0
        while pending:
            record = pending[0]
            size = min(len(record), cap)
            memmove(mem.address(caller, data, size), record, size)  # memory may have moved
            pending.popleft()
            ret = fn(context, ctx, data, size)
            count += 1
            self.delivered += 1
            if ret < 0:  # as libbpf: a negative return stops this poll (the rest stay queued)
                break
        self.last_delivery = time.perf_counter()
        return ret if ret < 0 else count
