"""ctypes bindings to Debian's libbpf.so.1 (1.1): objects, programs, maps, links and buffers.

The lifecycle reads as steps, as in libbpf-bootstrap:

    with BpfObject.open_memory(data, name="opensnoop") as obj:   # open
        obj.map(".rodata").set_initial_value(rodata)              # configure
        obj.load()                                                # load (LoadError has the log)
        link = obj.program("handle_openat").attach()              # attach
        with RingBuffer(obj.map("events").fd, on_event) as rb:    # poll
            rb.poll(100)
    # close: links are destroyed, fds closed

Every return code of libbpf is checked in one place (`_check`/`_check_ptr`), which raises
`ebpm.errors.LoadError` carrying the errno and whatever libbpf printed meanwhile (the verifier
log on a rejected load). libbpf's own log goes to the logger "ebpm.libbpf".
"""

from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any, Self

from ebpm.errors import LoadError, MissingFeatureError

__all__ = [
    "LIBBPF_LOGGER",
    "BpfObject",
    "Program",
    "Map",
    "Link",
    "RingBuffer",
    "PerfBuffer",
    "capture_log",
    "num_possible_cpus",
    "version",
    "prog_type_name",
    "map_type_name",
    "probe_prog_type",
    "BPF_ANY",
    "BPF_NOEXIST",
    "BPF_EXIST",
]

LIBBPF_LOGGER = "ebpm.libbpf"
_log = logging.getLogger(LIBBPF_LOGGER)

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

# enum bpf_tc_attach_point
BPF_TC_INGRESS = 1
BPF_TC_EGRESS = 2

# ---------------------------------------------------------------------------------------------
# option structs (layouts from /usr/include/bpf/libbpf.h, libbpf 1.1)


class _OpenOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_stub", c_uint32),
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", c_void_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    ]


class _UprobeOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("ref_ctr_offset", c_size_t),
        ("bpf_cookie", c_uint64),
        ("retprobe", c_bool),
        ("func_name", c_char_p),
    ]


class _KprobeOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("bpf_cookie", c_uint64),
        ("offset", c_size_t),
        ("retprobe", c_bool),
    ]


class _TcHook(Structure):
    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int), ("parent", c_uint32)]


class _TcOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


_PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
_RB_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
_PB_SAMPLE_FN = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_uint32)
_PB_LOST_FN = CFUNCTYPE(None, c_void_p, c_int, c_uint64)

_P = c_void_p
# name: (restype, argtypes)
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "libbpf_set_print": (_P, [_PRINT_FN]),
    "libbpf_version_string": (c_char_p, []),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_bpf_prog_type_str": (c_char_p, [c_int]),
    "libbpf_bpf_map_type_str": (c_char_p, [c_int]),
    "libbpf_probe_bpf_prog_type": (c_int, [c_int, _P]),
    "bpf_object__open_mem": (_P, [_P, c_size_t, POINTER(_OpenOpts)]),
    "bpf_object__open_file": (_P, [c_char_p, POINTER(_OpenOpts)]),
    "bpf_object__load": (c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__name": (c_char_p, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__name": (c_char_p, [_P]),
    "bpf_program__section_name": (c_char_p, [_P]),
    "bpf_program__type": (c_int, [_P]),
    "bpf_program__autoload": (c_bool, [_P]),
    "bpf_program__set_autoload": (c_int, [_P, c_bool]),
    "bpf_program__fd": (c_int, [_P]),
    "bpf_program__insn_cnt": (c_size_t, [_P]),
    "bpf_program__set_log_level": (c_int, [_P, c_uint32]),
    "bpf_program__set_attach_target": (c_int, [_P, c_int, c_char_p]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_tracepoint": (_P, [_P, c_char_p, c_char_p]),
    "bpf_program__attach_raw_tracepoint": (_P, [_P, c_char_p]),
    "bpf_program__attach_kprobe_opts": (_P, [_P, c_char_p, POINTER(_KprobeOpts)]),
    "bpf_program__attach_uprobe_opts": (_P, [_P, c_int, c_char_p, c_size_t, POINTER(_UprobeOpts)]),
    "bpf_program__attach_trace": (_P, [_P]),
    "bpf_program__attach_lsm": (_P, [_P]),
    "bpf_program__attach_xdp": (_P, [_P, c_int]),
    "bpf_program__pin": (c_int, [_P, c_char_p]),
    "bpf_program__unpin": (c_int, [_P, c_char_p]),
    "bpf_link__destroy": (c_int, [_P]),
    "bpf_link__fd": (c_int, [_P]),
    "bpf_link__pin": (c_int, [_P, c_char_p]),
    "bpf_link__unpin": (c_int, [_P]),
    "bpf_map__name": (c_char_p, [_P]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_map__type": (c_int, [_P]),
    "bpf_map__key_size": (c_uint32, [_P]),
    "bpf_map__value_size": (c_uint32, [_P]),
    "bpf_map__max_entries": (c_uint32, [_P]),
    "bpf_map__set_max_entries": (c_int, [_P, c_uint32]),
    "bpf_map__is_internal": (c_bool, [_P]),
    "bpf_map__btf_key_type_id": (c_uint32, [_P]),
    "bpf_map__btf_value_type_id": (c_uint32, [_P]),
    "bpf_map__initial_value": (_P, [_P, POINTER(c_size_t)]),
    "bpf_map__set_initial_value": (c_int, [_P, _P, c_size_t]),
    "bpf_map__pin": (c_int, [_P, c_char_p]),
    "bpf_map__unpin": (c_int, [_P, c_char_p]),
    "bpf_map_lookup_elem": (c_int, [c_int, _P, _P]),
    "bpf_map_update_elem": (c_int, [c_int, _P, _P, c_uint64]),
    "bpf_map_delete_elem": (c_int, [c_int, _P]),
    "bpf_map_get_next_key": (c_int, [c_int, _P, _P]),
    "bpf_tc_hook_create": (c_int, [POINTER(_TcHook)]),
    "bpf_tc_hook_destroy": (c_int, [POINTER(_TcHook)]),
    "bpf_tc_attach": (c_int, [POINTER(_TcHook), POINTER(_TcOpts)]),
    "bpf_tc_detach": (c_int, [POINTER(_TcHook), POINTER(_TcOpts)]),
    "ring_buffer__new": (_P, [c_int, _RB_SAMPLE_FN, _P, _P]),
    "ring_buffer__add": (c_int, [_P, c_int, _RB_SAMPLE_FN, _P]),
    "ring_buffer__poll": (c_int, [_P, c_int]),
    "ring_buffer__consume": (c_int, [_P]),
    "ring_buffer__epoll_fd": (c_int, [_P]),
    "ring_buffer__free": (None, [_P]),
    "perf_buffer__new": (_P, [c_int, c_size_t, _PB_SAMPLE_FN, _PB_LOST_FN, _P, _P]),
    "perf_buffer__poll": (c_int, [_P, c_int]),
    "perf_buffer__consume": (c_int, [_P]),
    "perf_buffer__epoll_fd": (c_int, [_P]),
    "perf_buffer__free": (None, [_P]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_libc: ctypes.CDLL | None = None
_print_cb: Any = None  # keep the callback alive for the life of the process
_capture = threading.local()

_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # LIBBPF_WARN, _INFO, _DEBUG
_PRINT_BUF = 4 << 20  # bytes; enough for the verifier log libbpf prints on a failed load


def _on_print(level: int, fmt: bytes, args: int) -> int:
    lvl = _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.DEBUG
    sink: list[str] | None = getattr(_capture, "lines", None)
    if sink is None and not _log.isEnabledFor(lvl):
        return 0
    assert _libc is not None
    buf = getattr(_capture, "buf", None)
    if buf is None:  # one per thread, reused: verifier logs arrive as one big message
        buf = _capture.buf = ctypes.create_string_buffer(_PRINT_BUF)
    _libc.vsnprintf(buf, _PRINT_BUF, fmt, ctypes.c_void_p(args))
    text = buf.value.decode(errors="replace").rstrip("\n")
    if sink is not None:
        sink.append(text)
        lvl = logging.DEBUG  # the caller turns captured text into an error; keep stderr quiet
    _log.log(lvl, "%s", text)
    return 0


def lib() -> ctypes.CDLL:
    """The loaded libbpf.so.1 with prototypes set and its log routed to logging."""
    global _lib, _libc, _print_cb
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            try:
                handle = ctypes.CDLL("libbpf.so.1", use_errno=True)
            except OSError as err:
                raise MissingFeatureError(
                    "libbpf", hint="install libbpf1 (apt install libbpf1)", detail=str(err)
                ) from err
            for name, (restype, argtypes) in _PROTOTYPES.items():
                fn = getattr(handle, name)
                fn.restype = restype
                fn.argtypes = argtypes
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
            _libc.vsnprintf.restype = c_int
            _print_cb = _PRINT_FN(_on_print)
            handle.libbpf_set_print(_print_cb)
            _lib = handle
    return _lib


class capture_log:  # noqa: N801 - used like a function: `with capture_log() as lines:`
    """Collect libbpf's log lines (in this thread) while the block runs."""

    def __enter__(self) -> list[str]:
        self._prev = getattr(_capture, "lines", None)
        self.lines: list[str] = []
        _capture.lines = self.lines
        return self.lines

    def __exit__(self, *exc: object) -> None:
        _capture.lines = self._prev
        if self._prev is not None:
            self._prev.extend(self.lines)


def _error(what: str, err: int, log: list[str] | None = None) -> LoadError:
    text = "\n".join(log or [])
    return LoadError(f"{what}: {os.strerror(err)}", verifier_log=text, errno=err)


def _check(ret: int, what: str, log: list[str] | None = None) -> int:
    """The one place an int return code of libbpf becomes an exception."""
    if ret < 0:
        raise _error(what, -ret, log)
    return ret


def _check_ptr(ptr: int | None, what: str, log: list[str] | None = None) -> int:
    """The one place a NULL pointer return of libbpf becomes an exception (errno set)."""
    if not ptr:
        err = ctypes.get_errno() or _errno.EINVAL
        raise _error(what, err, log)
    return ptr


def version() -> str:
    return (lib().libbpf_version_string() or b"").decode()


def num_possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "number of possible CPUs")


def prog_type_name(prog_type: int) -> str:
    return (lib().libbpf_bpf_prog_type_str(prog_type) or b"unknown").decode()


def map_type_name(map_type: int) -> str:
    return (lib().libbpf_bpf_map_type_str(map_type) or b"unknown").decode()


def probe_prog_type(prog_type: int) -> bool:
    """Whether the kernel can load a trivial program of this type."""
    return bool(lib().libbpf_probe_bpf_prog_type(prog_type, None) == 1)


# ---------------------------------------------------------------------------------------------


class Link:
    """An attachment; `destroy()` (or leaving the `with`) detaches it."""

    def __init__(
        self, ptr: int | None, description: str, *, on_destroy: Callable[[], None] | None = None
    ) -> None:
        self._ptr: int | None = ptr or None
        self.description = description
        self._on_destroy = on_destroy

    @property
    def fd(self) -> int:
        if self._ptr is None:
            raise LoadError(f"link {self.description}: already destroyed")
        return _check(lib().bpf_link__fd(self._ptr), f"link {self.description}: fd")

    @property
    def alive(self) -> bool:
        return self._ptr is not None or self._on_destroy is not None

    def pin(self, path: str) -> None:
        if self._ptr is None:
            raise LoadError(f"link {self.description}: cannot pin a destroyed link")
        what = f"link {self.description}: pin {path}"
        _check(lib().bpf_link__pin(self._ptr, path.encode()), what)

    def unpin(self) -> None:
        if self._ptr is not None:
            _check(lib().bpf_link__unpin(self._ptr), f"link {self.description}: unpin")

    def destroy(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr:
            lib().bpf_link__destroy(ptr)
        hook, self._on_destroy = self._on_destroy, None
        if hook is not None:
            hook()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"Link({self.description!r})"


class Program:
    """One program of an object (valid while the object is open)."""

    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self._obj = obj
        self._ptr = ptr
        self.name: str = lib().bpf_program__name(ptr).decode()
        self.section: str = (lib().bpf_program__section_name(ptr) or b"").decode()

    @property
    def type(self) -> int:
        return int(lib().bpf_program__type(self._ptr))

    @property
    def type_name(self) -> str:
        return prog_type_name(self.type)

    @property
    def autoload(self) -> bool:
        return bool(lib().bpf_program__autoload(self._ptr))

    @autoload.setter
    def autoload(self, value: bool) -> None:
        _check(lib().bpf_program__set_autoload(self._ptr, value), f"program {self.name}: autoload")

    @property
    def fd(self) -> int:
        return _check(lib().bpf_program__fd(self._ptr), f"program {self.name}: not loaded")

    def set_attach_target(self, function: str, *, target_fd: int = 0) -> None:
        """Before load: the kernel function (fentry/fexit/lsm/freplace) to attach to."""
        _check(
            lib().bpf_program__set_attach_target(self._ptr, target_fd, function.encode()),
            f"program {self.name}: attach target {function}",
        )

    def _attach(self, what: str, call: Callable[[], int | None]) -> Link:
        with capture_log() as log:
            ptr = call()
        link = Link(_check_ptr(ptr, f"program {self.name}: attach {what}", log),
                    f"{self.name} -> {what}")
        self._obj._links.append(link)
        return link

    def attach(self) -> Link:
        """Attach by section name (tracepoint/, raw_tp/, tp_btf/, uprobe/..., kprobe/...)."""
        return self._attach(self.section, lambda: lib().bpf_program__attach(self._ptr))

    def attach_tracepoint(self, category: str, name: str) -> Link:
        return self._attach(
            f"tracepoint {category}:{name}",
            lambda: lib().bpf_program__attach_tracepoint(
                self._ptr, category.encode(), name.encode()
            ),
        )

    def attach_raw_tracepoint(self, name: str) -> Link:
        return self._attach(
            f"raw_tp {name}",
            lambda: lib().bpf_program__attach_raw_tracepoint(self._ptr, name.encode()),
        )

    def attach_kprobe(self, function: str, *, retprobe: bool = False, offset: int = 0) -> Link:
        opts = _KprobeOpts(sz=ctypes.sizeof(_KprobeOpts), offset=offset, retprobe=retprobe)
        kind = "kretprobe" if retprobe else "kprobe"
        return self._attach(
            f"{kind} {function}",
            lambda: lib().bpf_program__attach_kprobe_opts(
                self._ptr, function.encode(), ctypes.byref(opts)
            ),
        )

    def attach_uprobe(
        self, binary: str, *, function: str = "", offset: int = 0, pid: int = -1,
        retprobe: bool = False,
    ) -> Link:
        """A uprobe on `binary` at `function` (+offset), for `pid` (-1: every process)."""
        opts = _UprobeOpts(
            sz=ctypes.sizeof(_UprobeOpts), retprobe=retprobe,
            func_name=function.encode() if function else None,
        )
        kind = "uretprobe" if retprobe else "uprobe"
        return self._attach(
            f"{kind} {binary}:{function or hex(offset)}",
            lambda: lib().bpf_program__attach_uprobe_opts(
                self._ptr, pid, binary.encode(), offset, ctypes.byref(opts)
            ),
        )

    def attach_trace(self) -> Link:
        """fentry/fexit/fmod_ret/tp_btf: the target was fixed at load time."""
        return self._attach("trace", lambda: lib().bpf_program__attach_trace(self._ptr))

    def attach_lsm(self) -> Link:
        return self._attach("lsm", lambda: lib().bpf_program__attach_lsm(self._ptr))

    def attach_xdp(self, ifindex: int) -> Link:
        return self._attach(
            f"xdp ifindex {ifindex}", lambda: lib().bpf_program__attach_xdp(self._ptr, ifindex)
        )

    def attach_tc(self, ifindex: int, *, egress: bool = False, priority: int = 1) -> Link:
        """A tc (clsact) filter; the returned link removes the filter when destroyed."""
        where = "egress" if egress else "ingress"
        hook = _TcHook(
            sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
            attach_point=BPF_TC_EGRESS if egress else BPF_TC_INGRESS,
        )
        ret = lib().bpf_tc_hook_create(ctypes.byref(hook))
        if ret < 0 and ret != -_errno.EEXIST:
            _check(ret, f"program {self.name}: tc hook on ifindex {ifindex}")
        created = ret == 0  # we added the clsact qdisc: remove it again on detach
        opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), prog_fd=self.fd, priority=priority, handle=1)
        ret = lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
        if ret < 0 and created:
            whole = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
                            attach_point=BPF_TC_INGRESS | BPF_TC_EGRESS)
            lib().bpf_tc_hook_destroy(ctypes.byref(whole))
        _check(ret, f"program {self.name}: attach tc {where} ifindex {ifindex}")

        def detach() -> None:
            detach_opts = _TcOpts(
                sz=ctypes.sizeof(_TcOpts), handle=opts.handle, priority=opts.priority
            )
            lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(detach_opts))
            if created:
                whole = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
                                attach_point=BPF_TC_INGRESS | BPF_TC_EGRESS)
                lib().bpf_tc_hook_destroy(ctypes.byref(whole))

        link = Link(None, f"{self.name} -> tc {where} ifindex {ifindex}", on_destroy=detach)
        self._obj._links.append(link)
        return link

    def pin(self, path: str) -> None:
        _check(lib().bpf_program__pin(self._ptr, path.encode()), f"program {self.name}: pin {path}")

    def unpin(self, path: str) -> None:
        _check(
            lib().bpf_program__unpin(self._ptr, path.encode()), f"program {self.name}: unpin {path}"
        )

    def __repr__(self) -> str:
        return f"Program({self.name!r}, section={self.section!r})"


class Map:
    """One map of an object; element operations work once the object is loaded."""

    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self._obj = obj
        self._ptr = ptr
        L = lib()
        self.name: str = L.bpf_map__name(ptr).decode()
        self.internal: bool = bool(L.bpf_map__is_internal(ptr))

    @property
    def type(self) -> int:
        return int(lib().bpf_map__type(self._ptr))

    @property
    def type_name(self) -> str:
        return map_type_name(self.type)

    @property
    def key_size(self) -> int:
        return int(lib().bpf_map__key_size(self._ptr))

    @property
    def value_size(self) -> int:
        return int(lib().bpf_map__value_size(self._ptr))

    @property
    def max_entries(self) -> int:
        return int(lib().bpf_map__max_entries(self._ptr))

    @max_entries.setter
    def max_entries(self, value: int) -> None:
        _check(lib().bpf_map__set_max_entries(self._ptr, value), f"map {self.name}: max_entries")

    @property
    def btf_key_type_id(self) -> int:
        return int(lib().bpf_map__btf_key_type_id(self._ptr))

    @property
    def btf_value_type_id(self) -> int:
        return int(lib().bpf_map__btf_value_type_id(self._ptr))

    @property
    def fd(self) -> int:
        return _check(lib().bpf_map__fd(self._ptr), f"map {self.name}: not created")

    @property
    def per_cpu(self) -> bool:
        return self.type_name in {"percpu_hash", "percpu_array", "lru_percpu_hash",
                                  "percpu_cgroup_storage"}

    def initial_value(self) -> bytes:
        """The current initial contents of a global-data map (.rodata, .data, .bss)."""
        size = c_size_t(0)
        ptr = lib().bpf_map__initial_value(self._ptr, ctypes.byref(size))
        if not ptr:
            raise LoadError(f"map {self.name}: has no initial value (not a global-data map)")
        return ctypes.string_at(ptr, size.value)

    def set_initial_value(self, data: bytes) -> None:
        """Before load: replace the initial contents (size must match; this sets .rodata)."""
        _check(
            lib().bpf_map__set_initial_value(self._ptr, data, len(data)),
            f"map {self.name}: set initial value ({len(data)} bytes)",
        )

    def _value_len(self) -> int:
        if self.per_cpu:
            return ((self.value_size + 7) // 8 * 8) * num_possible_cpus()
        return self.value_size

    def lookup(self, key: bytes) -> bytes | None:
        """The value (for per-CPU maps: all CPUs' values, each padded to 8 bytes) or None."""
        value = ctypes.create_string_buffer(self._value_len())
        ret = lib().bpf_map_lookup_elem(self.fd, key, value)
        if ret == -_errno.ENOENT:
            return None
        _check(ret, f"map {self.name}: lookup")
        return value.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        _check(lib().bpf_map_update_elem(self.fd, key, value, flags), f"map {self.name}: update")

    def delete(self, key: bytes) -> bool:
        ret = lib().bpf_map_delete_elem(self.fd, key)
        if ret == -_errno.ENOENT:
            return False
        _check(ret, f"map {self.name}: delete")
        return True

    def next_key(self, key: bytes | None) -> bytes | None:
        """The key after `key` (the first key when None), or None at the end."""
        out = ctypes.create_string_buffer(self.key_size)
        ret = lib().bpf_map_get_next_key(self.fd, key, out)
        if ret == -_errno.ENOENT:
            return None
        _check(ret, f"map {self.name}: next key")
        return out.raw

    def keys(self) -> Iterator[bytes]:
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def pin(self, path: str) -> None:
        _check(lib().bpf_map__pin(self._ptr, path.encode()), f"map {self.name}: pin {path}")

    def unpin(self, path: str) -> None:
        _check(lib().bpf_map__unpin(self._ptr, path.encode()), f"map {self.name}: unpin {path}")

    def __repr__(self) -> str:
        return f"Map({self.name!r})"


class BpfObject:
    """An opened (then loaded) BPF object; closing destroys its links and frees every fd."""

    def __init__(self, ptr: int, name: str, keep: Any = None) -> None:
        self._ptr: int | None = ptr
        self.name = name
        self._keep = keep  # the ELF buffer must outlive the object
        self._links: list[Link] = []
        self.loaded = False
        self._programs = [Program(self, p) for p in self._iter("bpf_object__next_program")]
        self._maps = [Map(self, m) for m in self._iter("bpf_object__next_map")]

    def _iter(self, fn: str) -> Iterator[int]:
        step = getattr(lib(), fn)
        cur = step(self._ptr, None)
        while cur:
            yield cur
            cur = step(self._ptr, cur)

    @staticmethod
    def _opts(name: str, btf_custom_path: str | None, pin_root_path: str | None) -> _OpenOpts:
        return _OpenOpts(
            sz=ctypes.sizeof(_OpenOpts),
            object_name=name.encode() if name else None,
            btf_custom_path=btf_custom_path.encode() if btf_custom_path else None,
            pin_root_path=pin_root_path.encode() if pin_root_path else None,
        )

    @classmethod
    def open_memory(
        cls, data: bytes, *, name: str = "", btf_custom_path: str | None = None,
        pin_root_path: str | None = None,
    ) -> BpfObject:
        """Open an ELF object held in memory (`btf_custom_path`: target BTF for CO-RE)."""
        buf = ctypes.create_string_buffer(data, len(data))
        opts = cls._opts(name, btf_custom_path, pin_root_path)
        with capture_log() as log:
            ptr = lib().bpf_object__open_mem(buf, len(data), ctypes.byref(opts))
        _check_ptr(ptr, f"open object {name or '(memory)'}", log)
        return cls(ptr, name or (lib().bpf_object__name(ptr) or b"").decode(), keep=buf)

    @classmethod
    def open_file(
        cls, path: str, *, btf_custom_path: str | None = None, pin_root_path: str | None = None
    ) -> BpfObject:
        opts = cls._opts("", btf_custom_path, pin_root_path)
        with capture_log() as log:
            ptr = lib().bpf_object__open_file(path.encode(), ctypes.byref(opts))
        _check_ptr(ptr, f"open object {path}", log)
        return cls(ptr, (lib().bpf_object__name(ptr) or b"").decode())

    @property
    def programs(self) -> list[Program]:
        return list(self._programs)

    @property
    def maps(self) -> list[Map]:
        return list(self._maps)

    def program(self, name: str) -> Program:
        for prog in self._programs:
            if prog.name == name:
                return prog
        raise LoadError(f"object {self.name}: no program named {name!r}")

    def map(self, name: str) -> Map:
        """A map by name; global-data maps answer to ".rodata"/".bss"/".data" too."""
        for m in self._maps:
            if m.name == name or (name.startswith(".") and m.internal and m.name.endswith(name)):
                return m
        raise LoadError(f"object {self.name}: no map named {name!r}")

    def find_map(self, name: str) -> Map | None:
        try:
            return self.map(name)
        except LoadError:
            return None

    def load(self) -> None:
        """Create maps and load programs; a rejection raises LoadError with libbpf's log."""
        if self._ptr is None:
            raise LoadError(f"object {self.name}: closed")
        with capture_log() as log:
            ret = lib().bpf_object__load(self._ptr)
        _check(ret, f"load {self.name}", log)
        self.loaded = True

    @property
    def links(self) -> list[Link]:
        return [link for link in self._links if link.alive]

    def detach_all(self) -> None:
        """Destroy every link made through this object (newest first)."""
        while self._links:
            self._links.pop().destroy()

    def close(self) -> None:
        self.detach_all()
        ptr, self._ptr = self._ptr, None
        if ptr:
            lib().bpf_object__close(ptr)
        self._keep = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_ptr", None):
            self.close()


# ---------------------------------------------------------------------------------------------


class _EventBuffer:
    """What ring and perf buffer consumers share: the libbpf handle, poll and consume (an
    exception raised by a callback surfaces here; -EINTR counts as no records), and free."""

    _prefix = ""  # libbpf function prefix: "ring_buffer__" or "perf_buffer__"
    _label = ""
    _ptr: int | None = None
    _error: BaseException | None = None

    def _fn(self, name: str) -> Any:
        return getattr(lib(), self._prefix + name)

    def _handle(self) -> int:
        if self._ptr is None:
            raise LoadError(f"{self._label} buffer: already freed")
        return self._ptr

    def _raise_pending(self, ret: int, what: str) -> int:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if ret == -_errno.EINTR:
            return 0
        return _check(ret, what)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms for records and consume them; returns how many."""
        ret = self._fn("poll")(self._handle(), timeout_ms)
        return self._raise_pending(ret, f"{self._label} poll")

    def consume(self) -> int:
        return self._raise_pending(self._fn("consume")(self._handle()), f"{self._label} consume")

    @property
    def epoll_fd(self) -> int:
        return int(self._fn("epoll_fd")(self._handle()))

    def free(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._fn("free")(ptr)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


class RingBuffer(_EventBuffer):
    """A BPF ring buffer consumer: `callback(data: bytes)` runs for each record during poll."""

    _prefix, _label = "ring_buffer__", "ring"

    def __init__(self, map_fd: int, callback: Callable[[bytes], None]) -> None:
        self._cbs: list[Any] = []
        self._error = None
        cb = self._wrap(callback)
        self._ptr = _check_ptr(
            lib().ring_buffer__new(map_fd, cb, None, None), f"ring buffer (map fd {map_fd})"
        )

    def _wrap(self, callback: Callable[[bytes], None]) -> Any:
        string_at = ctypes.string_at

        def sample(_ctx: int, data: int, size: int) -> int:
            try:
                callback(string_at(data, size))
            except BaseException as err:  # surfaced by poll(); returning <0 stops the poll
                self._error = err
                return -_errno.ECANCELED
            return 0

        cb = _RB_SAMPLE_FN(sample)
        self._cbs.append(cb)
        return cb

    def add(self, map_fd: int, callback: Callable[[bytes], None]) -> None:
        """Consume another ring buffer map through the same poll."""
        _check(
            lib().ring_buffer__add(self._handle(), map_fd, self._wrap(callback), None),
            f"ring buffer: add map fd {map_fd}",
        )

    def free(self) -> None:
        super().free()
        self._cbs.clear()


class PerfBuffer(_EventBuffer):
    """A perf event array consumer: `callback(cpu, data)` per record, `lost(cpu, count)`."""

    _prefix, _label = "perf_buffer__", "perf"

    def __init__(
        self, map_fd: int, callback: Callable[[int, bytes], None], *,
        lost: Callable[[int, int], None] | None = None, page_count: int = 64,
    ) -> None:
        self._error = None
        self.lost_total = 0
        string_at = ctypes.string_at

        def sample(_ctx: int, cpu: int, data: int, size: int) -> None:
            if self._error is not None:
                return
            try:
                callback(cpu, string_at(data, size))
            except BaseException as err:
                self._error = err

        def on_lost(_ctx: int, cpu: int, count: int) -> None:
            self.lost_total += count
            if lost is not None:
                try:
                    lost(cpu, count)
                except BaseException as err:
                    self._error = err

        self._cbs = (_PB_SAMPLE_FN(sample), _PB_LOST_FN(on_lost))
        self._ptr = _check_ptr(
            lib().perf_buffer__new(map_fd, page_count, self._cbs[0], self._cbs[1], None, None),
            f"perf buffer (map fd {map_fd})",
        )
