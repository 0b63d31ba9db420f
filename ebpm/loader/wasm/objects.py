"""The kernel objects one guest owns: loaded BPF objects, their links and event buffers."""

from __future__ import annotations

import errno
import os
import time
from collections import deque

from ebpm import log
from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.wasm.policy import ProgramPolicy
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ebpm.loader.libbpf.perfbuf import MappedPerf

__all__ = ["GuestObjects", "EventBuffer", "LoadedObject", "Refused"]

_log = log.get("ebpm.wasm")

_RINGBUF = "ringbuf"
_PERF_EVENT_ARRAY = "perf_event_array"
_CGROUP_TYPES = {
    "cgroup_skb", "cgroup_sock", "cgroup_device", "sock_ops", "cgroup_sock_addr",
    "cgroup_sysctl", "cgroup_sockopt",
}


MAX_OBJECTS = 64  # BPF objects one guest may hold open at a time

# Maps whose values are file descriptors: a guest's integer there would name one of the host's
# fds, so the guest may not write them (the host itself fills perf event arrays).
FD_VALUE_MAPS = frozenset({
    "prog_array", "perf_event_array", "cgroup_array", "array_of_maps", "hash_of_maps",
    "devmap", "devmap_hash", "sockmap", "sockhash", "cpumap", "xskmap", "reuseport_sockarray",
})


class Refused(Exception):
    """The policy forbids what the guest asked for; the host call fails and this is reported."""


class EventBuffer:
    """A ring or perf buffer whose records are copied out at once and handed over in order.

    Both are read from their memory where the CPU allows (`ringbuf.MappedRing`,
    `perfbuf.MappedPerf`: no Python callback per record), else through libbpf. A Python
    exception inside a libbpf callback is printed and swallowed, so the callback only copies
    the record; the guest is called after poll returns.
    Records the guest did not take yet stay queued for the next poll: none is dropped.
    """

    def __init__(self, map_: libbpf.Map) -> None:
        from ebpm.loader.libbpf import ringbuf

        self.pending: deque[bytes] = deque()
        self.received = 0
        self._mapped: ringbuf.MappedRing | MappedPerf | None = None
        self._ring: libbpf.RingBuffer | None = None
        self._perf: libbpf.PerfBuffer | None = None
        if map_.type_name not in (_RINGBUF, _PERF_EVENT_ARRAY):
            raise LoadError(f"map {map_.name}: a {map_.type_name} map is not an event buffer")
        if ringbuf.supported():
            try:
                if map_.type_name == _RINGBUF:
                    self._mapped = ringbuf.MappedRing(map_.fd)
                else:
                    from ebpm.loader.libbpf.perfbuf import MappedPerf

                    self._mapped = MappedPerf(map_.fd)
            except LoadError:  # not mappable here: libbpf reads it
                self._mapped = None
        if self._mapped is None and map_.type_name == _RINGBUF:
            self._ring = libbpf.RingBuffer(map_.fd, self._on_record)
        elif self._mapped is None:
            self._perf = libbpf.PerfBuffer(map_.fd, self._on_perf_record)

    def _on_record(self, data: bytes) -> None:
        self.pending.append(data)
        self.received += 1

    def _on_perf_record(self, _cpu: int, data: bytes) -> None:
        self._on_record(data)

    @property
    def lost(self) -> int:
        reader = self._perf or self._mapped
        return reader.lost_total if reader is not None else 0

    def poll(self, timeout_ms: int) -> int:
        """Queue the records available within `timeout_ms` (as libbpf's poll); how many."""
        if self._mapped is not None:
            got = self._mapped.records()
            if not got and timeout_ms and self._mapped.wait(timeout_ms):
                got = self._mapped.records()
            self.pending.extend(got)
            self.received += len(got)
            return len(got)
        if self._ring is not None:
            return self._ring.poll(timeout_ms)
        assert self._perf is not None
        return self._perf.poll(timeout_ms)

    def free(self) -> None:
        if self._mapped is not None:
            self._mapped.close()
        if self._ring is not None:
            self._ring.free()
        if self.lost:
            _log.warning("wasm guest: the kernel lost %d perf records (consumer too slow)",
                         self.lost)
        if self._perf is not None:
            self._perf.free()
        self.pending.clear()


class LoadedObject:
    """A BPF object a guest loaded, by its handle, with the event buffers it polls."""

    __slots__ = ("handle", "obj", "buffers")

    def __init__(self, handle: int, obj: libbpf.BpfObject) -> None:
        self.handle = handle
        self.obj = obj
        self.buffers: dict[int, EventBuffer] = {}


@record
class Timings:
    """Seconds spent in the kernel-facing steps of a run (for the benchmark and -v output)."""

    open: float = 0.0
    load: float = 0.0
    attach: float = 0.0
    close: float = 0.0


class GuestObjects:
    """Everything kernel-side a guest made, so that all of it is released on every exit path."""

    def __init__(self, policy: ProgramPolicy) -> None:
        self.policy = policy
        self.refusals: list[str] = []
        self.errors: list[LoadError] = []
        self._objects: dict[int, LoadedObject] = {}
        self._by_fd: dict[int, tuple[LoadedObject, libbpf.Map]] = {}
        self._next = 1
        self._ncpus: int | None = None
        self._tracefs = False
        self._t = {"open": 0.0, "load": 0.0, "attach": 0.0, "close": 0.0}
        self._uncached: list[bytes] = []  # objects loaded without the CO-RE cache's file

    @property
    def timings(self) -> Timings:
        return Timings(**self._t)

    # -- objects -------------------------------------------------------------------------

    def load(self, elf: bytes) -> int:
        """Open, check against the policy, and load an object; a nonzero handle."""
        if len(self._objects) >= MAX_OBJECTS:
            raise LoadError(
                f"wasm guest: already holds {MAX_OBJECTS} BPF objects", errno=errno.EMFILE
            )
        from ebpm.loader import corecache

        t0 = time.perf_counter()
        core = corecache.lookup(elf)  # (the kernel's types its CO-RE relocations use)
        obj = self._open(elf, core)
        t1 = time.perf_counter()
        try:
            try:
                obj.load()
            except LoadError as err:
                if core is None:
                    raise
                _log.info("load with the CO-RE cache's %s refused (%s); again with the "
                          "kernel's BTF", core, err)
                obj.close()
                obj = self._open(elf, None)
                obj.load()
                corecache.forget(core)
        except BaseException:
            obj.close()
            raise
        if core is None:  # for the next run of the same object (made as this one ends)
            self._uncached.append(elf)
        t2 = time.perf_counter()
        self._t["open"] += t1 - t0
        self._t["load"] += t2 - t1
        handle, self._next = self._next, self._next + 1
        loaded = self._objects[handle] = LoadedObject(handle, obj)
        for m in obj.maps:
            try:
                self._by_fd[m.fd] = (loaded, m)
            except LoadError:
                continue
            if m.type_name == _PERF_EVENT_ARRAY:
                _open_perf_buffer(loaded, m)
        return handle

    def _open(self, elf: bytes, core: str | None) -> libbpf.BpfObject:
        """`elf` opened (our own copy, not guest memory), its programs checked against the
        policy."""
        obj = libbpf.BpfObject.open_memory(elf, btf_custom_path=core)
        try:
            for prog in obj.programs:
                if not prog.autoload:
                    continue
                why = self.policy.refusal(prog.name, prog.type_name, prog.section)
                if why is not None:
                    raise Refused(why)
        except BaseException:
            obj.close()
            raise
        return obj

    def get(self, handle: int) -> LoadedObject:
        loaded = self._objects.get(handle)
        if loaded is None:
            raise LoadError(f"wasm guest: no BPF object with handle {handle}")
        return loaded

    def close(self, handle: int) -> None:
        loaded = self._objects.pop(handle, None)
        if loaded is None:
            raise LoadError(f"wasm guest: no BPF object with handle {handle}")
        self._release(loaded)

    def _release(self, loaded: LoadedObject) -> None:
        t0 = time.perf_counter()
        for buf in loaded.buffers.values():
            buf.free()
        loaded.buffers.clear()
        for fd in [fd for fd, (lo, _) in self._by_fd.items() if lo is loaded]:
            del self._by_fd[fd]
        loaded.obj.close()  # destroys its links first
        self._t["close"] += time.perf_counter() - t0

    def close_all(self) -> None:
        """Release every object (links first), newest first; never raises for one failure.
        Then the CO-RE cache's files of the objects loaded without one are made: once nothing
        is attached, so that the guest's own tracing never sees ebpm run bpftool."""
        from ebpm.loader import corecache

        while self._objects:
            _, loaded = self._objects.popitem()
            try:
                self._release(loaded)
            except Exception as err:  # keep releasing the others
                _log.warning("wasm guest: closing object %s: %s", loaded.obj.name, err)
        uncached, self._uncached = self._uncached, []
        for wait in [corecache.make_later(elf) for elf in uncached]:
            if wait is not None:
                wait()

    # -- programs ------------------------------------------------------------------------

    def attach(self, handle: int, program: str, target: str) -> None:
        loaded = self.get(handle)
        prog = loaded.obj.program(program)
        t0 = time.perf_counter()
        if prog.type_name == "tracepoint" and not self._tracefs:
            from ebpm.loader.environment import ensure_tracefs

            ensure_tracefs()  # libbpf 1.1 reads tracepoint ids there (MissingFeatureError)
            self._tracefs = True
        if not target:
            prog.attach()
        elif prog.type_name == "xdp":
            ifindex = _ifindex(target)
            prog.attach_xdp(ifindex)
        elif prog.type_name in _CGROUP_TYPES:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
            try:
                prog.attach_cgroup(fd)
            finally:
                os.close(fd)
        else:
            raise LoadError(
                f"program {program}: cannot attach a {prog.type_name} program to {target!r}",
                errno=errno.EOPNOTSUPP,
            )
        self._t["attach"] += time.perf_counter() - t0

    # -- maps ----------------------------------------------------------------------------

    def map_fd(self, handle: int, name: str) -> int:
        loaded = self.get(handle)
        m = loaded.obj.find_map(name)
        if m is None and "." in name:  # "execsnoo.rodata": the skeleton's name of .rodata
            m = loaded.obj.find_map(name[name.index(".") :])
        if m is None:
            raise LoadError(f"object {loaded.obj.name}: no map named {name!r}", errno=errno.ENOENT)
        return m.fd

    def map_of_fd(self, fd: int) -> tuple[LoadedObject, libbpf.Map]:
        """The map behind a guest's fd: only fds of the guest's own maps are usable."""
        found = self._by_fd.get(fd)
        if found is None:
            raise LoadError(f"wasm guest: fd {fd} is not one of its maps", errno=errno.EBADF)
        return found

    def value_size(self, m: libbpf.Map) -> int:
        """Bytes of one value as the kernel reads/writes it: per-CPU maps hold one per CPU."""
        if m.per_cpu:
            if self._ncpus is None:
                self._ncpus = libbpf.num_possible_cpus()
            return m.cpu_stride * self._ncpus
        return m.value_size

    def num_possible_cpus(self) -> int:
        if self._ncpus is None:
            self._ncpus = libbpf.num_possible_cpus()
        return self._ncpus

    def buffer(self, handle: int, fd: int) -> EventBuffer:
        """The event buffer of map `fd`, created on first use (ring or perf by map type)."""
        loaded, m = self.map_of_fd(fd)
        if handle in self._objects and self._objects[handle] is not loaded:
            raise LoadError(f"wasm guest: map fd {fd} belongs to another object", errno=errno.EBADF)
        buf = loaded.buffers.get(fd)
        if buf is None:
            buf = loaded.buffers[fd] = EventBuffer(m)
        return buf

    def __len__(self) -> int:
        return len(self._objects)


def _open_perf_buffer(loaded: LoadedObject, m: libbpf.Map) -> None:
    """The buffer of perf event array `m`, opened as the object is loaded. A record a program
    sends to a CPU whose slot of the array holds no perf event is dropped, and libbpf's
    perf_buffer__new is what puts one there; a guest's perf_buffer__new only notes the map
    (wasm-bpf's ABI has no call for it), and the host made the buffer at the guest's first poll:
    records sent between the two were lost (a guest printing READY after perf_buffer__new, then
    its trigger, on a busy machine). A ring buffer keeps its records in the map itself: its
    reader is still made at the first poll. One that cannot be opened here is tried again then
    (and says why)."""
    try:
        loaded.buffers[m.fd] = EventBuffer(m)
    except LoadError:
        pass


def _ifindex(name: str) -> int:
    import socket

    try:
        return socket.if_nametoindex(name)
    except OSError as err:
        raise LoadError(f"xdp: no network interface {name!r}", errno=errno.ENODEV) from err

