"""bpf_printk output as events: what `bpftool prog tracelog` shows, read from a private tracefs
instance so that no other reader's lines are taken and no other tracer's lines mix in.

A program calls `bpf_printk` through the helpers `bpf_trace_printk` (6) or `bpf_trace_vprintk`
(177); `uses_printk(obj)` finds such a call in the object's code. The kernel emits every such
line as the trace event `bpf_trace/bpf_trace_printk`, which any tracefs instance may enable:
`TraceLog.open()` makes `instances/ebpm-PID-N`, enables that one event there and reads the
instance's `trace_pipe` (non-blocking, an fd to poll). Lines from every BPF program that
printks meanwhile arrive, as in bpftool's view; nothing else (trace_printk, other events) does.
Lines ebpm's own threads caused are left out (its own output is writes). `close()` disables
the event and removes the instance; an instance left by a killed ebpm is removed by the next.
"""

from __future__ import annotations

import itertools
import os

from ebpm.errors import LoadError
from ebpm.loader.elf import ElfFile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TRACEFS", "FIELD", "uses_printk", "parse_line", "TraceLog"]

TRACEFS = "/sys/kernel/tracing"
FIELD = "bpf_printk"  # the event's field holding the printed text
_HELPERS = (6, 177)  # BPF_FUNC_trace_printk, BPF_FUNC_trace_vprintk
_CALL = 0x85  # BPF_JMP | BPF_CALL
_SHF_EXECINSTR = 0x4
_EVENT = "events/bpf_trace/bpf_trace_printk/enable"
_BUFFER_KB = 256  # per CPU: a printk line is short; the default (1.4 MiB) is for tracers
# "  comm-PID  [CPU] FLAGS  SECONDS: bpf_trace_printk: TEXT" (FLAGS absent with some options);
# compiled on first use (re's cache), by a package that printks: not on every run's way
_LINE = (
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:\S+\s+)?(?P<ts>\d+\.\d+):\s+bpf_trace_printk:\s?(?P<text>.*)$"
)
_serial = itertools.count()


def uses_printk(obj: bytes) -> bool:
    """Does any program of this BPF object call bpf_trace_printk or bpf_trace_vprintk?"""
    elf = ElfFile(obj, error=LoadError, hint="pass a .bpf.o compiled with clang -target bpf")
    little = obj[5:6] == b"\x01"
    for section in elf.sections:
        if not section.flags & _SHF_EXECINSTR or section.size < 8:
            continue
        if _calls_printk(elf.section_data(section), little):
            return True
    return False


def _calls_printk(code: bytes, little: bool) -> bool:
    """A helper call to one of _HELPERS among `code`'s 8-byte instructions: opcode 0x85, no
    source register (src_reg 0: the high nibble of the registers' byte in little-endian, the
    low one in big-endian), offset 0, the helper's number as imm. (bytes.find on the imm,
    not a pattern: every run checks its object on the way to its first event.)"""
    src_reg = 0xF0 if little else 0x0F
    for helper in _HELPERS:
        imm = helper.to_bytes(4, "little" if little else "big")
        at = code.find(imm, 4)
        while at != -1:
            insn = at - 4
            if (insn % 8 == 0 and code[insn] == _CALL and not code[insn + 1] & src_reg
                    and code[insn + 2:at] == b"\0\0"):
                return True
            at = code.find(imm, at + 1)
    return False


def parse_line(line: str) -> dict[str, Any] | None:
    """One trace_pipe line as an event: {"ts", "cpu", "pid", "comm", "bpf_printk"}."""
    import re  # (a package that calls bpf_printk only)

    m = re.match(_LINE, line)
    if m is None:
        return None
    return {"ts": float(m["ts"]), "cpu": int(m["cpu"]), "pid": int(m["pid"]),
            "comm": m["comm"].strip(), FIELD: m["text"].rstrip("\n")}


class TraceLog:
    """A private tracefs instance receiving bpf_printk lines; `fd` is pollable."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.name = os.path.basename(path)
        self._rest = b""
        self._own: dict[int, bool] = {}  # thread id -> is one of this process's threads

    @classmethod
    def open(cls, tracefs: str = TRACEFS) -> TraceLog:
        instances = os.path.join(tracefs, "instances")
        _remove_stale(instances)
        path = os.path.join(instances, f"ebpm-{os.getpid()}-{next(_serial)}")
        try:
            os.mkdir(path)
        except OSError as err:
            raise LoadError(f"bpf_printk: cannot create the tracefs instance {path}: "
                            f"{err.strerror}", errno=err.errno,
                            hint=f"is tracefs mounted at {tracefs}?") from err
        try:
            _write(os.path.join(path, "buffer_size_kb"), str(_BUFFER_KB))
            _write(os.path.join(path, "buffer_percent"), "0")  # poll wakes on any line
            _write(os.path.join(path, _EVENT), "1")
            fd = os.open(os.path.join(path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            _remove(path)
            raise LoadError(f"bpf_printk: cannot read the bpf_trace_printk event in {path}: "
                            f"{err.strerror}", errno=err.errno) from err
        return cls(path, fd)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line available now, as events (never blocks)."""
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return []
        data = self._rest + b"".join(chunks)
        lines = data.split(b"\n")
        self._rest = lines.pop()
        out = []
        for raw in lines:
            event = parse_line(raw.decode("utf-8", "replace"))
            if event is not None and not self._ours(event["pid"]):
                out.append(event)
        return out

    def _ours(self, tid: int) -> bool:
        """A line ebpm itself caused (printing the previous line is a write: a program that
        printks on every write would otherwise feed itself forever)."""
        own = self._own.get(tid)
        if own is None:
            own = self._own[tid] = os.path.exists(f"/proc/self/task/{tid}")
        return own

    def close(self) -> None:
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        _remove(self.path)


def _remove_stale(instances: str) -> None:
    """Instances of ebpm processes that are gone (killed before their cleanup ran)."""
    try:
        names = os.listdir(instances)
    except OSError:
        return
    import re

    for name in names:
        m = re.fullmatch(r"ebpm-(\d+)-\d+", name)
        if m is None or int(m[1]) == os.getpid() or os.path.exists(f"/proc/{m[1]}"):
            continue
        _remove(os.path.join(instances, name))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _remove(path: str) -> None:
    try:
        _write(os.path.join(path, _EVENT), "0")
    except OSError:
        pass
    try:
        os.rmdir(path)
    except OSError:
        pass
