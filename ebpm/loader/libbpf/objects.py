"""BPF objects and their programs: open an ELF object, configure it, load it into the kernel,
close it (which destroys its links and frees every fd)."""

from __future__ import annotations

import ctypes
import errno
from ctypes import POINTER, Structure, c_bool, c_char_p, c_int, c_size_t, c_uint32, c_void_p

from ebpm.errors import LoadError
from ebpm.loader.libbpf.library import (
    capture_log,
    check,
    check_ptr,
    declare,
    lib,
    prog_type_name,
)
from ebpm.loader.libbpf.maps import Map

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType
    from typing import Any

    from ebpm.loader.libbpf.links import Link

__all__ = ["BpfObject", "Program"]


class _OpenOpts(Structure):  # struct bpf_object_open_opts, libbpf 1.1
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


_P = c_void_p
declare({
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
    "bpf_program__pin": (c_int, [_P, c_char_p]),
    "bpf_program__unpin": (c_int, [_P, c_char_p]),
})


def _links() -> ModuleType:
    """The attach calls (`ebpm.loader.libbpf.links`), imported on first use: `ebpm run`
    imports them while libbpf loads (through `ebpm.loader.attach`), not before."""
    from ebpm.loader.libbpf import links

    return links


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
        check(lib().bpf_program__set_autoload(self._ptr, value), f"program {self.name}: autoload")

    @property
    def fd(self) -> int:
        return check(lib().bpf_program__fd(self._ptr), f"program {self.name}: not loaded")

    def set_attach_target(self, function: str, *, target_fd: int = 0) -> None:
        """Before load: the kernel function (fentry/fexit/lsm/freplace) to attach to."""
        check(
            lib().bpf_program__set_attach_target(self._ptr, target_fd, function.encode()),
            f"program {self.name}: attach target {function}",
        )

    @property
    def handle(self) -> int:
        """The `struct bpf_program *` (for the attach calls in `links`)."""
        return self._ptr

    def own(self, link: Link) -> None:
        """Keep `link` to destroy it when the object closes (the calls in `links` do this)."""
        self._obj.own(link)

    # attaching: see `links`, one function per kind of hook

    def attach(self) -> Link:
        """Attach by section name (tracepoint/, raw_tp/, tp_btf/, uprobe/..., kprobe/...)."""
        return _links().by_section(self)

    def attach_tracepoint(self, category: str, name: str) -> Link:
        return _links().tracepoint(self, category, name)

    def attach_raw_tracepoint(self, name: str) -> Link:
        return _links().raw_tracepoint(self, name)

    def attach_kprobe(self, function: str, *, retprobe: bool = False, offset: int = 0) -> Link:
        return _links().kprobe(self, function, retprobe=retprobe, offset=offset)

    def attach_uprobe(
        self, binary: str, *, function: str = "", offset: int = 0, pid: int = -1,
        retprobe: bool = False,
    ) -> Link:
        """A uprobe on `binary` at `function` (+offset), for `pid` (-1: every process)."""
        return _links().uprobe(self, binary, function=function, offset=offset, pid=pid,
                               retprobe=retprobe)

    def attach_trace(self) -> Link:
        """fentry/fexit/fmod_ret/tp_btf: the target was fixed at load time."""
        return _links().trace(self)

    def attach_lsm(self) -> Link:
        return _links().lsm(self)

    def attach_xdp(self, ifindex: int) -> Link:
        return _links().xdp(self, ifindex)

    def attach_tc(self, ifindex: int, *, egress: bool = False) -> Link:
        """A tc (clsact) filter; the returned link removes the filter when destroyed."""
        return _links().tc(self, ifindex, egress=egress)

    def attach_cgroup(self, cgroup_fd: int) -> Link:
        return _links().cgroup(self, cgroup_fd)

    def pin(self, path: str) -> None:
        check(lib().bpf_program__pin(self._ptr, path.encode()), f"program {self.name}: pin {path}")

    def unpin(self, path: str) -> None:
        check(
            lib().bpf_program__unpin(self._ptr, path.encode()), f"program {self.name}: unpin {path}"
        )

    def __repr__(self) -> str:
        return f"Program({self.name!r}, section={self.section!r})"


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
        if not ptr:
            err = ctypes.get_errno() or errno.EINVAL
            if err != errno.ENOMEM:
                # bytes in memory: libbpf's errno (ENOENT, EINVAL, its own 4000s) says what it
                # found wrong in them, never that a file is missing
                said = [line.removeprefix("libbpf: ").strip() for line in log if line.strip()]
                why = said[-1] if said else "libbpf could not read it"
                raise LoadError(
                    f"open object {name or '(memory)'}: not a valid BPF object (damaged?): "
                    f"{why}", hint="build it again (`ebpm build`, or clang -g -O2 -target "
                    "bpf); -vv shows libbpf's log", verifier_log="\n".join(log), errno=err)
        check_ptr(ptr, f"open object {name or '(memory)'}", log)
        return cls(ptr, name or (lib().bpf_object__name(ptr) or b"").decode(), keep=buf)

    @classmethod
    def open_file(
        cls, path: str, *, btf_custom_path: str | None = None, pin_root_path: str | None = None
    ) -> BpfObject:
        opts = cls._opts("", btf_custom_path, pin_root_path)
        with capture_log() as log:
            ptr = lib().bpf_object__open_file(path.encode(), ctypes.byref(opts))
        check_ptr(ptr, f"open object {path}", log)
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
        check(ret, f"load {self.name}", log)
        self.loaded = True

    def own(self, link: Link) -> None:
        """Keep `link` to destroy it with the object (the attach calls in `links` do this)."""
        self._links.append(link)

    @property
    def links(self) -> list[Link]:
        return [link for link in self._links if link.alive]

    def detach_all(self) -> None:
        """Destroy every link made through this object. The kernel takes its time to release
        a tracepoint's link (it waits for RCU grace periods: ~80 ms per link here, 0.3 s for
        opensnoop's four), so plain links go side by side, each in a thread of its own; links
        with a hook of their own (a netlink tc filter) then go one by one, newest first."""
        done, self._links = self._links[::-1], []
        plain = [link for link in done if not link.hooked]
        if len(plain) > 1:
            import threading

            threads = [threading.Thread(target=link.destroy, name="ebpm-detach")
                       for link in plain]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for link in done:
            link.destroy()

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

