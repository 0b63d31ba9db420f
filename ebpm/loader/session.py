"""A loaded package: open, configure, load (with fallback to alternatives), attach, poll, close.

`Session.start(obj, config, ...)` makes every kernel-dependent choice: which program of each
alternative group (`ProgramSpec.group`) loads and attaches here, which fall back and why. The
session then decodes events from ring/perf buffers and snapshots the maps that carry results
(counters, log2 histograms). `close()` (or leaving the `with`) destroys every link and fd.
"""

from __future__ import annotations

import re
import select
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ebpm.errors import LoadError, UsageError
from ebpm.loader import libbpf
from ebpm.loader.btf import Btf, Kind
from ebpm.loader.decode import Decoder, compile_decoder
from ebpm.package import PackageConfig, ProgramSpec

__all__ = ["Dropped", "MapSnapshot", "Session", "verifier_tail", "parse_attach_target"]

_FAILED_PROG = re.compile(r"prog '([^']+)': (?:failed|BPF program load failed|relo #)")
_EVENT_MAP_TYPES = ("ringbuf", "perf_event_array")
_RESULT_MAP_TYPES = ("hash", "array", "percpu_hash", "percpu_array", "lru_hash",
                     "lru_percpu_hash")
_RESULT_NAMES = re.compile(r"hist|count|stat|total|result|summary", re.IGNORECASE)
_TAIL_LINES = 20


@dataclass(frozen=True)
class Dropped:
    """A program that could not load or attach here; `replaced_by` is the alternative used."""

    program: str
    section: str
    reason: str
    replaced_by: str = ""


@dataclass(frozen=True)
class MapSnapshot:
    """The decoded contents of a result map: `hist` when values carry log2 `slots`."""

    name: str
    kind: str  # "hist" or "table"
    rows: tuple[tuple[Any, Any], ...]


def verifier_tail(log: str, lines: int = _TAIL_LINES) -> str:
    """The last lines of the verifier's log inside libbpf's output (or of the whole log)."""
    text = log.splitlines()
    start = max((i for i, x in enumerate(text) if "BEGIN PROG LOAD LOG" in x), default=-1)
    if start >= 0:
        end = next(
            (i for i in range(start, len(text)) if "END PROG LOAD LOG" in text[i]), len(text)
        )
        body = [x for x in text[start + 1 : end] if x.strip()]
    else:
        body = [x for x in text if x.strip()]
    return "\n".join(body[-lines:])


def parse_attach_target(text: str) -> tuple[str, list[str]]:
    """`uprobe:/bin/bash:readline`, `uretprobe:BIN:FUNC`, `tracepoint:CAT:NAME`, `raw_tp:NAME`,
    `kprobe:FUNC`, `kretprobe:FUNC`, `xdp:IFNAME`, `tc:IFNAME[:egress]` -> (kind, parts)."""
    kind, _, rest = text.partition(":")
    if kind in ("uprobe", "uretprobe"):
        binary, _, func = rest.rpartition(":")
        parts = [binary, func] if binary else [rest, ""]
    else:
        parts = rest.split(":") if rest else []
    valid = {"uprobe": 2, "uretprobe": 2, "tracepoint": 2, "raw_tp": 1, "kprobe": 1,
             "kretprobe": 1, "xdp": 1, "tc": (1, 2)}
    want = valid.get(kind)
    counts = want if isinstance(want, tuple) else (want,)
    ok = want is not None and len(parts) in counts
    if not ok or not all(parts[:1]):
        raise UsageError(
            f"attach target {text!r}: not understood",
            hint="use uprobe:BINARY:FUNC, tracepoint:CAT:NAME, raw_tp:NAME, kprobe:FUNC, "
            "xdp:IFNAME or tc:IFNAME[:egress]",
        )
    return kind, parts


def _attach_explicit(prog: libbpf.Program, target: str) -> libbpf.Link:
    kind, parts = parse_attach_target(target)
    if kind in ("uprobe", "uretprobe"):
        binary, func = parts
        offset = 0
        if func.startswith("0x"):
            offset, func = int(func, 16), ""
        return prog.attach_uprobe(binary, function=func, offset=offset,
                                  retprobe=kind == "uretprobe")
    if kind == "tracepoint":
        return prog.attach_tracepoint(parts[0], parts[1])
    if kind == "raw_tp":
        return prog.attach_raw_tracepoint(parts[0])
    if kind in ("kprobe", "kretprobe"):
        return prog.attach_kprobe(parts[0], retprobe=kind == "kretprobe")
    import socket

    try:
        ifindex = socket.if_nametoindex(parts[0])
    except OSError as err:
        raise UsageError(f"attach target {target!r}: no interface {parts[0]!r}") from err
    if kind == "xdp":
        return prog.attach_xdp(ifindex)
    return prog.attach_tc(ifindex, egress=len(parts) > 1 and parts[1] == "egress")


def _sum(values: list[Any]) -> Any:
    """Per-CPU values added up (ints, lists of ints, dicts of those); others: CPU 0's."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, list, dict)):
        return first
    if isinstance(first, int):
        return sum(values)
    if isinstance(first, list):
        return [_sum([v[i] for v in values]) for i in range(len(first))]
    return {k: _sum([v[k] for v in values]) for k in first}


class _EventSource:
    def __init__(self, map_name: str, decoder: Decoder | None) -> None:
        self.map_name = map_name
        self.decoder = decoder


class Session:
    """A package loaded and attached in the kernel; use as a context manager."""

    def __init__(
        self, obj: libbpf.BpfObject, config: PackageConfig, btf: Btf, sidecar: Btf | None,
        dropped: list[Dropped], attached: list[str],
    ) -> None:
        self.obj = obj
        self.config = config
        self.btf = btf
        self.sidecar = sidecar
        self.dropped = tuple(dropped)
        self.attached = tuple(attached)
        self.events_seen = 0
        self._rings: libbpf.RingBuffer | None = None
        self._perfs: list[libbpf.PerfBuffer] = []
        self._epoll: Any = None
        self._sources: list[_EventSource] = []
        self._result_maps: list[tuple[libbpf.Map, Decoder | None, Decoder | None]] = []
        self._on_event: Callable[[dict[str, Any]], None] | None = None
        self._find_result_maps()

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, obj_bytes: bytes, config: PackageConfig, *, sidecar_btf: bytes | None = None,
        rodata: bytes | None = None, attach: Mapping[str, str] | None = None,
    ) -> Session:
        """Open, configure, load and attach, falling back to alternatives where one fails."""
        btf = Btf.parse(obj_bytes)
        sidecar = Btf.parse(sidecar_btf) if sidecar_btf else None
        attach = dict(attach or {})
        excluded: dict[str, Dropped] = {}
        specs = {p.name: p for p in config.programs}
        groups: dict[str, list[ProgramSpec]] = {}
        for p in config.programs:
            if p.group:
                groups.setdefault(p.group, []).append(p)
        unknown = sorted(set(attach) - {p for p in specs} - {""})
        while True:
            obj = libbpf.BpfObject.open_memory(obj_bytes, name=config.name[:15])
            try:
                names = {p.name for p in obj.programs}
                if unknown and not set(unknown) <= names:
                    missing = sorted(set(unknown) - names)
                    raise UsageError(
                        f"--attach {missing[0]}: no program of that name",
                        hint="programs: " + ", ".join(sorted(names)),
                    )
                chosen = cls._choose(obj, specs, groups, excluded)
                if rodata is not None:
                    obj.map(".rodata").set_initial_value(rodata)
                try:
                    obj.load()
                except LoadError as err:
                    failed = _FAILED_PROG.search(err.verifier_log)
                    name = failed.group(1) if failed else ""
                    if cls._can_fall_back(name, specs, groups, excluded):
                        excluded[name] = Dropped(name, specs[name].section,
                                                 f"load failed: {err.message.split(': ')[-1]}")
                        obj.close()
                        continue
                    raise cls._load_error(config.name, name, err) from err
                attached, retry = cls._attach_all(obj, chosen, specs, groups, excluded, attach)
                if retry:
                    continue
            except BaseException:
                obj.close()
                raise
            dropped = []
            for d in excluded.values():
                group = groups.get(specs[d.program].group, [])
                used = next((p.name for p in group if p.name in chosen), "")
                dropped.append(Dropped(d.program, d.section, d.reason, used))
            return cls(obj, config, btf, sidecar, dropped, attached)

    @staticmethod
    def _choose(
        obj: libbpf.BpfObject, specs: dict[str, ProgramSpec],
        groups: dict[str, list[ProgramSpec]], excluded: dict[str, Dropped],
    ) -> set[str]:
        chosen: set[str] = set()
        for prog in obj.programs:
            spec = specs.get(prog.name)
            if spec is None:
                if prog.autoload:
                    chosen.add(prog.name)
                continue
            if spec.group:
                first = next((p for p in groups[spec.group] if p.name not in excluded), None)
                on = first is not None and first.name == prog.name
            else:
                on = spec.autoload and prog.name not in excluded
            prog.autoload = on
            if on:
                chosen.add(prog.name)
        return chosen

    @staticmethod
    def _can_fall_back(
        name: str, specs: dict[str, ProgramSpec], groups: dict[str, list[ProgramSpec]],
        excluded: dict[str, Dropped],
    ) -> bool:
        spec = specs.get(name)
        if spec is None or not spec.group:
            return False
        rest = [p for p in groups[spec.group] if p.name not in excluded and p.name != name]
        return bool(rest)

    @staticmethod
    def _load_error(package: str, program: str, err: LoadError) -> LoadError:
        tail = verifier_tail(err.verifier_log)
        what = f"program {program}" if program else "object"
        cause = err.message.split(": ")[-1]
        msg = f"load {package}: {what} rejected by the kernel: {cause}"
        if tail:
            msg += "\n" + "\n".join("  " + line for line in tail.splitlines())
        hint = "run with -vv for libbpf's full log"
        if err.errno == 1:  # EPERM
            hint = "this kernel refuses this program type (EPERM); " + hint
        return LoadError(msg, hint=hint, verifier_log=err.verifier_log, errno=err.errno)

    @staticmethod
    def _attach_all(
        obj: libbpf.BpfObject, chosen: set[str], specs: dict[str, ProgramSpec],
        groups: dict[str, list[ProgramSpec]], excluded: dict[str, Dropped],
        explicit: dict[str, str],
    ) -> tuple[list[str], bool]:
        attached = []
        for prog in obj.programs:
            if prog.name not in chosen:
                continue
            try:
                target = explicit.get(prog.name)
                link = _attach_explicit(prog, target) if target else prog.attach()
            except LoadError as err:
                if Session._can_fall_back(prog.name, specs, groups, excluded):
                    reason = f"attach failed: {err.message.split(': ')[-1]}"
                    excluded[prog.name] = Dropped(prog.name, prog.section, reason)
                    obj.close()
                    return [], True
                hint = None
                if err.errno == 95:  # EOPNOTSUPP: the section names no target
                    hint = (f"give a target: --attach {prog.name}=uprobe:BINARY:FUNC "
                            "(or tracepoint:CAT:NAME, xdp:IFNAME, tc:IFNAME)")
                elif "kprobe" in prog.section:
                    hint = "this kernel may lack kprobes (CONFIG_KPROBES)"
                raise LoadError(f"attach {prog.name} ({prog.section}): {err.message}",
                                hint=hint, verifier_log=err.verifier_log,
                                errno=err.errno) from err
            attached.append(f"{prog.name} -> {link.description.split(' -> ')[-1]}")
        return attached, False

    # -- events --------------------------------------------------------------------------------

    def _type_id(self, type_name: str) -> tuple[Btf, int] | None:
        bare = re.sub(r"^(struct|union|enum)\s+", "", type_name.strip())
        for btf in (self.btf, self.sidecar):
            if btf is None:
                continue
            t = btf.find(bare, Kind.STRUCT, Kind.UNION, Kind.TYPEDEF)
            if t is not None:
                return btf, t.id
        return None

    def decoder_for(self, type_name: str) -> Decoder:
        found = self._type_id(type_name)
        if found is None:
            raise LoadError(
                f"events: type {type_name!r} is in neither the object's BTF nor the sidecar",
                hint="rebuild with `ebpm build` (it writes a BTF sidecar for event types)",
            )
        return compile_decoder(*found)

    def event_maps(self) -> list[tuple[str, str]]:
        """(map, C type) of every event stream: declared ones, else ring/perf maps."""
        declared = [(e.map, e.type) for e in self.config.events]
        if declared:
            return declared
        out = []
        for m in self.obj.maps:
            if m.type_name in _EVENT_MAP_TYPES:
                out.append((m.name, "event" if self._type_id("event") else ""))
        return out

    @property
    def fields(self) -> tuple[str, ...]:
        """Columns of the first event stream (empty when undecodable)."""
        for src in self._sources:
            if src.decoder is not None:
                return src.decoder.fields
        return ()

    @property
    def widths(self) -> tuple[int, ...]:
        """Per column of `fields`: the widest value its type can print (0: unknown)."""
        for src in self._sources:
            if src.decoder is not None:
                return src.decoder.widths
        return ()

    @property
    def lost(self) -> int:
        return sum(p.lost_total for p in self._perfs)

    def open_events(self, on_event: Callable[[dict[str, Any]], None]) -> int:
        """Start consuming every event stream; returns how many there are."""
        self._on_event = on_event
        for map_name, type_name in self.event_maps():
            m = self.obj.map(map_name)
            decoder = self.decoder_for(type_name) if type_name else None
            self._sources.append(_EventSource(map_name, decoder))
            callback = self._callback(decoder, on_event)
            if m.type_name == "ringbuf":
                if self._rings is None:
                    self._rings = libbpf.RingBuffer(m.fd, callback)
                else:
                    self._rings.add(m.fd, callback)
            elif m.type_name == "perf_event_array":
                perf_cb = self._perf_callback(callback)
                self._perfs.append(libbpf.PerfBuffer(m.fd, perf_cb))
            else:
                raise LoadError(f"events: map {map_name} is a {m.type_name}, not a ring buffer "
                                "or perf event array")
        buffers = ([self._rings] if self._rings else []) + list(self._perfs)
        if len(buffers) > 1:
            self._epoll = select.epoll()
            for b in buffers:
                self._epoll.register(b.epoll_fd, select.EPOLLIN)
        return len(buffers)

    def _callback(
        self, decoder: Decoder | None, sink: Callable[[dict[str, Any]], None]
    ) -> Callable[[bytes], None]:
        if decoder is None:
            def raw(data: bytes) -> None:
                self.events_seen += 1
                sink({"data": data.hex()})
            return raw
        decode = decoder.decode

        def decoded(data: bytes) -> None:
            self.events_seen += 1
            sink(decode(data))
        return decoded

    @staticmethod
    def _perf_callback(callback: Callable[[bytes], None]) -> Callable[[int, bytes], None]:
        def on_sample(_cpu: int, data: bytes) -> None:
            callback(data)
        return on_sample

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms and hand every available event to the callback."""
        if self._epoll is not None:
            ready = self._epoll.poll(timeout_ms / 1000)
            n = 0
            if ready:
                if self._rings is not None:
                    n += self._rings.consume()
                for p in self._perfs:
                    n += p.consume()
            return n
        if self._rings is not None:
            return self._rings.poll(timeout_ms)
        if self._perfs:
            return self._perfs[0].poll(timeout_ms)
        return 0

    # -- result maps ---------------------------------------------------------------------------

    def _find_result_maps(self) -> None:
        event_maps = {m for m, _ in self.event_maps()}
        candidates = []
        for m in self.obj.maps:
            if m.internal or m.name in event_maps or m.type_name not in _RESULT_MAP_TYPES:
                continue
            key = self._map_decoder(m.btf_key_type_id)
            value = self._map_decoder(m.btf_value_type_id)
            candidates.append((m, key, value))
        wanted = [c for c in candidates if _RESULT_NAMES.search(c[0].name)
                  or (c[2] is not None and "slots" in c[2].fields)]
        self._result_maps = wanted if (wanted or self.event_maps()) else candidates

    def _map_decoder(self, type_id: int) -> Decoder | None:
        if not type_id:
            return None
        try:
            return compile_decoder(self.btf, type_id)
        except LoadError:
            return None

    @property
    def result_maps(self) -> tuple[str, ...]:
        return tuple(m.name for m, _, _ in self._result_maps)

    def snapshot_maps(self, *, clear: bool = False) -> list[MapSnapshot]:
        """Decoded contents of the result maps (per-CPU values summed); `clear` empties them
        afterwards, so that the next snapshot holds one interval's counts."""
        out = []
        ncpu = libbpf.num_possible_cpus()
        for m, kdec, vdec in self._result_maps:
            rows = []
            stride = (m.value_size + 7) // 8 * 8
            for key, value in m.items():
                k = kdec.decode(key) if kdec else key.hex()
                if m.per_cpu:
                    parts = [value[i * stride : i * stride + m.value_size] for i in range(ncpu)]
                    v = _sum([vdec.decode(p) for p in parts]) if vdec else parts[0].hex()
                else:
                    v = vdec.decode(value) if vdec else value.hex()
                rows.append((k, v))
                if clear:
                    if m.type_name in ("array", "percpu_array"):
                        m.update(key, bytes(len(value)))
                    else:
                        m.delete(key)
            if m.type_name in ("array", "percpu_array"):
                rows = [r for r in rows if _nonzero(r[1])]
            rows.sort(key=lambda r: _sort_key(r[0]))
            kind = "hist" if vdec is not None and "slots" in vdec.fields else "table"
            out.append(MapSnapshot(m.name, kind, tuple(rows)))
        return out

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._rings is not None:
            self._rings.free()
            self._rings = None
        for p in self._perfs:
            p.free()
        self._perfs = []
        self.obj.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nonzero(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_nonzero(v) for v in value.values())
    if isinstance(value, list):
        return any(_nonzero(v) for v in value)
    return bool(value)


def _sort_key(key: Any) -> Any:
    if isinstance(key, dict):
        return tuple(str(v) for v in key.values())
    return (str(type(key)), key) if not isinstance(key, (int, str)) else (0, str(key).zfill(20))

