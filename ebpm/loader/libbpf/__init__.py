"""ctypes bindings to Debian's libbpf.so.1 (1.1), one module per kernel concept: `library` (the
handle, libbpf's log, the one return-code check), `objects` (objects and their programs),
`maps`, `links` (attaching) and `buffers` (ring buffers, perf buffers).

The lifecycle reads as steps, as in libbpf-bootstrap:

    with BpfObject.open_memory(data, name="opensnoop") as obj:   # open
        obj.map(".rodata").set_initial_value(rodata)              # configure
        obj.load()                                                # load (LoadError has the log)
        link = obj.program("handle_openat").attach()              # attach
        with RingBuffer(obj.map("events").fd, on_event) as rb:    # poll
            rb.poll(100)
    # close: links are destroyed, fds closed

Every return code of libbpf is checked in one place (`library.check`/`check_ptr`), which raises
`ebpm.errors.LoadError` carrying the errno and whatever libbpf printed meanwhile (the verifier
log on a rejected load). libbpf's own log goes to the logger "ebpm.libbpf".
"""

from __future__ import annotations

from ebpm.loader.libbpf.library import (
    LIBBPF_LOGGER,
    capture_log,
    lib,
    log_callback,
    log_read,
    map_type_name,
    num_possible_cpus,
    probe_prog_type,
    prog_type_name,
    quiet,
    version,
)
from ebpm.loader.libbpf.maps import BPF_ANY, BPF_EXIST, BPF_NOEXIST, Map, obj_get
from ebpm.loader.libbpf.objects import BpfObject, Program

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ebpm.loader.libbpf.buffers import PerfBuffer, RingBuffer
    from ebpm.loader.libbpf.links import Link

__all__ = [
    "LIBBPF_LOGGER",
    "BpfObject",
    "Program",
    "Map",
    "Link",
    "RingBuffer",
    "PerfBuffer",
    "capture_log",
    "quiet",
    "log_callback",
    "log_read",
    "lib",
    "num_possible_cpus",
    "version",
    "prog_type_name",
    "map_type_name",
    "probe_prog_type",
    "BPF_ANY",
    "BPF_NOEXIST",
    "BPF_EXIST",
    "obj_get",
]


def __getattr__(name: str) -> type:
    """The buffers (`RingBuffer`, `PerfBuffer`) and `Link`, imported on first use: `ebpm run`
    needs them only once the object is loaded, and starts libbpf's load before (PEP 562)."""
    if name in ("RingBuffer", "PerfBuffer"):
        from ebpm.loader.libbpf import buffers

        found: type = getattr(buffers, name)
        return found
    if name == "Link":
        from ebpm.loader.libbpf.links import Link

        return Link
    raise AttributeError(f"module 'ebpm.loader.libbpf' has no attribute {name!r}")
