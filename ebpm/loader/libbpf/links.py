"""Links: a program attached to a hook (tracepoint, raw tracepoint, kprobe, uprobe, fentry/lsm,
XDP, tc, cgroup); destroying the link detaches it. One function per kind of attachment."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable
from ctypes import POINTER, Structure, c_bool, c_char_p, c_int, c_size_t, c_uint32, c_uint64
from typing import Protocol

from ebpm.errors import LoadError
from ebpm.loader.libbpf.library import capture_log, check, check_ptr, declare, lib

__all__ = [
    "Link",
    "Attachable",
    "by_section",
    "tracepoint",
    "raw_tracepoint",
    "kprobe",
    "uprobe",
    "trace",
    "lsm",
    "xdp",
    "tc",
    "cgroup",
    "BPF_TC_INGRESS",
    "BPF_TC_EGRESS",
]

# enum bpf_tc_attach_point
BPF_TC_INGRESS = 1
BPF_TC_EGRESS = 2
_TC_HANDLE = 1  # the filter handle ebpm uses on the clsact qdisc


# option structs (layouts from /usr/include/bpf/libbpf.h, libbpf 1.1)


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


_P = ctypes.c_void_p
declare({
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_tracepoint": (_P, [_P, c_char_p, c_char_p]),
    "bpf_program__attach_raw_tracepoint": (_P, [_P, c_char_p]),
    "bpf_program__attach_kprobe_opts": (_P, [_P, c_char_p, POINTER(_KprobeOpts)]),
    "bpf_program__attach_uprobe_opts": (_P, [_P, c_int, c_char_p, c_size_t, POINTER(_UprobeOpts)]),
    "bpf_program__attach_trace": (_P, [_P]),
    "bpf_program__attach_lsm": (_P, [_P]),
    "bpf_program__attach_xdp": (_P, [_P, c_int]),
    "bpf_program__attach_cgroup": (_P, [_P, c_int]),
    "bpf_link__destroy": (c_int, [_P]),
    "bpf_link__fd": (c_int, [_P]),
    "bpf_link__pin": (c_int, [_P, c_char_p]),
    "bpf_link__unpin": (c_int, [_P]),
    "bpf_tc_hook_create": (c_int, [POINTER(_TcHook)]),
    "bpf_tc_hook_destroy": (c_int, [POINTER(_TcHook)]),
    "bpf_tc_attach": (c_int, [POINTER(_TcHook), POINTER(_TcOpts)]),
    "bpf_tc_detach": (c_int, [POINTER(_TcHook), POINTER(_TcOpts)]),
})


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
        return check(lib().bpf_link__fd(self._ptr), f"link {self.description}: fd")

    @property
    def alive(self) -> bool:
        return self._ptr is not None or self._on_destroy is not None

    def pin(self, path: str) -> None:
        if self._ptr is None:
            raise LoadError(f"link {self.description}: cannot pin a destroyed link")
        what = f"link {self.description}: pin {path}"
        check(lib().bpf_link__pin(self._ptr, path.encode()), what)

    def unpin(self) -> None:
        if self._ptr is not None:
            check(lib().bpf_link__unpin(self._ptr), f"link {self.description}: unpin")

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


class Attachable(Protocol):
    """What attaching needs of a program (`objects.Program`, without importing it)."""

    @property
    def name(self) -> str: ...

    @property
    def section(self) -> str: ...

    @property
    def handle(self) -> int:
        """The `struct bpf_program *`."""
        ...

    @property
    def fd(self) -> int: ...

    def own(self, link: Link) -> None:
        """Keep `link`, to destroy it when the program's object closes."""
        ...


def _attach(prog: Attachable, what: str, call: Callable[[int], int | None]) -> Link:
    """`call(program pointer)` returns a `struct bpf_link *`; the object owns the new link."""
    with capture_log() as log:
        ptr = call(prog.handle)
    link = Link(check_ptr(ptr, f"program {prog.name}: attach {what}", log),
                f"{prog.name} -> {what}")
    prog.own(link)
    return link


def by_section(prog: Attachable) -> Link:
    """Attach by section name (tracepoint/, raw_tp/, tp_btf/, uprobe/..., kprobe/...)."""
    return _attach(prog, prog.section, lambda p: lib().bpf_program__attach(p))


def tracepoint(prog: Attachable, category: str, name: str) -> Link:
    return _attach(
        prog, f"tracepoint {category}:{name}",
        lambda p: lib().bpf_program__attach_tracepoint(p, category.encode(), name.encode()),
    )


def raw_tracepoint(prog: Attachable, name: str) -> Link:
    return _attach(prog, f"raw_tp {name}",
                   lambda p: lib().bpf_program__attach_raw_tracepoint(p, name.encode()))


def kprobe(prog: Attachable, function: str, *, retprobe: bool = False, offset: int = 0) -> Link:
    opts = _KprobeOpts(sz=ctypes.sizeof(_KprobeOpts), offset=offset, retprobe=retprobe)
    kind = "kretprobe" if retprobe else "kprobe"
    return _attach(
        prog, f"{kind} {function}",
        lambda p: lib().bpf_program__attach_kprobe_opts(p, function.encode(), ctypes.byref(opts)),
    )


def uprobe(
    prog: Attachable, binary: str, *, function: str = "", offset: int = 0, pid: int = -1,
    retprobe: bool = False,
) -> Link:
    """A uprobe on `binary` at `function` (+offset), for `pid` (-1: every process)."""
    opts = _UprobeOpts(
        sz=ctypes.sizeof(_UprobeOpts), retprobe=retprobe,
        func_name=function.encode() if function else None,
    )
    kind = "uretprobe" if retprobe else "uprobe"
    return _attach(
        prog, f"{kind} {binary}:{function or hex(offset)}",
        lambda p: lib().bpf_program__attach_uprobe_opts(
            p, pid, binary.encode(), offset, ctypes.byref(opts)
        ),
    )


def trace(prog: Attachable) -> Link:
    """fentry/fexit/fmod_ret/tp_btf: the target was fixed at load time."""
    return _attach(prog, "trace", lambda p: lib().bpf_program__attach_trace(p))


def lsm(prog: Attachable) -> Link:
    return _attach(prog, "lsm", lambda p: lib().bpf_program__attach_lsm(p))


def xdp(prog: Attachable, ifindex: int) -> Link:
    return _attach(prog, f"xdp ifindex {ifindex}",
                   lambda p: lib().bpf_program__attach_xdp(p, ifindex))


def cgroup(prog: Attachable, cgroup_fd: int) -> Link:
    return _attach(prog, f"cgroup fd {cgroup_fd}",
                   lambda p: lib().bpf_program__attach_cgroup(p, cgroup_fd))


def _whole_hook(ifindex: int) -> _TcHook:
    return _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
                   attach_point=BPF_TC_INGRESS | BPF_TC_EGRESS)


def tc(prog: Attachable, ifindex: int, *, egress: bool = False, priority: int = 1) -> Link:
    """A tc (clsact) filter; the returned link removes the filter when destroyed."""
    where = "egress" if egress else "ingress"
    hook = _TcHook(
        sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
        attach_point=BPF_TC_EGRESS if egress else BPF_TC_INGRESS,
    )
    ret = lib().bpf_tc_hook_create(ctypes.byref(hook))
    if ret < 0 and ret != -errno.EEXIST:
        check(ret, f"program {prog.name}: tc hook on ifindex {ifindex}")
    created = ret == 0  # we added the clsact qdisc: remove it again on detach
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), prog_fd=prog.fd, priority=priority,
                   handle=_TC_HANDLE)
    ret = lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
    if ret < 0 and created:
        lib().bpf_tc_hook_destroy(ctypes.byref(_whole_hook(ifindex)))
    check(ret, f"program {prog.name}: attach tc {where} ifindex {ifindex}")

    def detach() -> None:
        detach_opts = _TcOpts(
            sz=ctypes.sizeof(_TcOpts), handle=opts.handle, priority=opts.priority
        )
        lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(detach_opts))
        if created:
            lib().bpf_tc_hook_destroy(ctypes.byref(_whole_hook(ifindex)))

    link = Link(None, f"{prog.name} -> tc {where} ifindex {ifindex}", on_destroy=detach)
    prog.own(link)
    return link
