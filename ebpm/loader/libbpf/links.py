"""Links: a program attached to a hook (tracepoint, raw tracepoint, kprobe, uprobe, fentry/lsm,
XDP, tc, cgroup); destroying the link detaches it. One function per kind of attachment.

Every attachment is a kernel link where the kernel has one, so that a process that dies
(kill -9) takes its attachments with it: XDP through libbpf's bpf_link, tc through tcx
(`BPF_LINK_CREATE` with BPF_TCX_INGRESS/EGRESS, kernel 6.6+, made here with the raw bpf(2)
syscall because Debian's libbpf 1.1 predates it). Only on older kernels is tc a netlink filter
on a clsact qdisc; then ebpm removes exactly its own filter (never the qdisc, which other tools
may use) and explains a filter left at its handle by a run that was killed."""

from __future__ import annotations

import ctypes
import errno
import os
from ctypes import POINTER, Structure, c_bool, c_char_p, c_int, c_size_t, c_uint32, c_uint64

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
    "iterate",
    "open_pinned",
    "BpfIterator",
    "BPF_TC_INGRESS",
    "BPF_TC_EGRESS",
]

# enum bpf_tc_attach_point
BPF_TC_INGRESS = 1
BPF_TC_EGRESS = 2
_TC_HANDLE = 0xEB  # the filter handle (and priority) ebpm uses on a clsact qdisc
# enum bpf_attach_type (include/uapi/linux/bpf.h, Linux 6.6+) and bpf(2) commands
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
_BPF_LINK_CREATE = 28
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351,
            "riscv64": 280}


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
    "bpf_link__open": (_P, [c_char_p]),
    "bpf_iter_create": (c_int, [c_int]),
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
    def hooked(self) -> bool:
        """Whether destroying it runs a hook of its own (not only libbpf's bpf_link__destroy)."""
        return self._on_destroy is not None

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


TYPE_CHECKING = False
if TYPE_CHECKING:  # (a type only: typing is not imported at run time)
    from collections.abc import Callable
    from typing import Protocol

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


def open_pinned(path: str, description: str) -> Link:
    """The link pinned at `path` (bpffs), opened (bpf_link__open): `destroy()` closes this
    handle only; the pin keeps it attached."""
    with capture_log() as log:
        ptr = lib().bpf_link__open(path.encode())
    return Link(check_ptr(ptr, f"link {description}: open {path}", log), description)


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


class BpfIterator:
    """One run of an iterator program (an `iter/` program's link): a new iterator fd
    (bpf_iter_create), whose reads run the program over the next objects and return what it
    wrote with bpf_seq_printf/bpf_seq_write, as reads of its pinned file do; b"" at its end.
    The fd holds the link and program in the kernel until `close()` (or leaving the `with`),
    even if the link is destroyed meanwhile."""

    def __init__(self, link: Link) -> None:
        self.description = link.description
        self.fd: int | None = check(lib().bpf_iter_create(link.fd),
                                    f"link {link.description}: create an iterator")

    def read(self, size: int = 65536) -> bytes:
        """The next chunk of its output (at most `size` bytes); b"" once it is over."""
        if self.fd is None:
            raise LoadError(f"link {self.description}: the iterator is closed")
        try:
            return os.read(self.fd, size)
        except OSError as err:
            raise LoadError(f"link {self.description}: read the iterator: {err.strerror}",
                            errno=err.errno) from err

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> BpfIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iterate(link: Link, take: Callable[[bytes], None]) -> int:
    """Run an iterator (an `iter/` program's link) once, as `cat` of its pinned file would: a
    new iterator fd (bpf_iter_create), read to its end, each chunk handed to `take` (what the
    program wrote with bpf_seq_printf/bpf_seq_write); returns how many bytes it wrote."""
    total = 0
    with BpfIterator(link) as it:
        while chunk := it.read():
            total += len(chunk)
            take(chunk)
    return total


class _LinkCreateTcx(Structure):
    """`union bpf_attr`'s link_create part as BPF_LINK_CREATE reads it for tcx."""

    _fields_ = [
        ("prog_fd", c_uint32),
        ("target_ifindex", c_uint32),
        ("attach_type", c_uint32),
        ("flags", c_uint32),
        ("relative_fd", c_uint32),
        ("_pad", c_uint32),
        ("expected_revision", c_uint64),
        ("_rest", ctypes.c_uint8 * 32),  # the rest of the union stays zero
    ]


def _bpf_link_create_tcx(prog_fd: int, ifindex: int, egress: bool) -> int:
    """A tcx link fd (or -errno)."""
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        return -errno.ENOSYS
    attr = _LinkCreateTcx(prog_fd=prog_fd, target_ifindex=ifindex,
                          attach_type=BPF_TCX_EGRESS if egress else BPF_TCX_INGRESS)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(number), ctypes.c_int(_BPF_LINK_CREATE), ctypes.byref(attr),
                      ctypes.c_uint(ctypes.sizeof(attr)))
    return int(fd) if fd >= 0 else -ctypes.get_errno()


def tc(prog: Attachable, ifindex: int, *, egress: bool = False) -> Link:
    """A tc program on `ifindex`: a tcx link where the kernel has tcx (it goes with the process,
    whatever kills it), else a netlink filter on clsact that the link removes when destroyed."""
    where = "egress" if egress else "ingress"
    fd = _bpf_link_create_tcx(prog.fd, ifindex, egress)
    if fd >= 0:
        link = Link(None, f"{prog.name} -> tc {where} ifindex {ifindex}",
                    on_destroy=lambda: os.close(fd))
        prog.own(link)
        return link
    if fd not in (-errno.EINVAL, -errno.ENOSYS, -errno.EOPNOTSUPP):
        check(fd, f"program {prog.name}: attach tcx {where} ifindex {ifindex}")
    return tc_filter(prog, ifindex, egress=egress)


def tc_filter(prog: Attachable, ifindex: int, *, egress: bool = False) -> Link:
    """A tc filter on the clsact qdisc (kernels without tcx): the qdisc is created when missing
    and left in place (other tools may add filters to it); the link removes only our filter.
    A filter already at ebpm's handle is a leftover of a run that was killed: explained."""
    where = "egress" if egress else "ingress"
    hook = _TcHook(
        sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
        attach_point=BPF_TC_EGRESS if egress else BPF_TC_INGRESS,
    )
    ret = lib().bpf_tc_hook_create(ctypes.byref(hook))
    if ret < 0 and ret != -errno.EEXIST:
        check(ret, f"program {prog.name}: tc hook on ifindex {ifindex}")
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), prog_fd=prog.fd, priority=_TC_HANDLE,
                   handle=_TC_HANDLE)
    ret = lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
    if ret == -errno.EEXIST:
        name = _ifname(ifindex)
        raise LoadError(
            f"program {prog.name}: tc {where} on {name} already has a filter at ebpm's handle "
            f"{_TC_HANDLE:#x} (pref {_TC_HANDLE}): left by an ebpm run that was killed?",
            hint=f"look with `tc filter show dev {name} {where}`; remove it with "
            f"`tc filter del dev {name} {where} pref {_TC_HANDLE} handle {_TC_HANDLE:#x} bpf`",
            errno=errno.EEXIST,
        )
    check(ret, f"program {prog.name}: attach tc {where} ifindex {ifindex}")

    def detach() -> None:
        detach_opts = _TcOpts(
            sz=ctypes.sizeof(_TcOpts), handle=opts.handle, priority=opts.priority
        )
        lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(detach_opts))

    link = Link(None, f"{prog.name} -> tc {where} ifindex {ifindex}", on_destroy=detach)
    prog.own(link)
    return link


def _ifname(ifindex: int) -> str:
    import socket

    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return f"ifindex {ifindex}"
