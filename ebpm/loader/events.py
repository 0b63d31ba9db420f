"""Event streams: the ring buffers and perf event arrays a loaded package writes records to,
decoded into dicts by the record's BTF type (from the object, else the sidecar) and handed to
one callback while polled; and, for a package that calls bpf_printk, its trace lines
(`ebpm.loader.tracelog`)."""

from __future__ import annotations

from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.btf import Btf, Kind
from ebpm.loader.decode import BatchDecoder, Decoder, batch_decoder, compile_decoder
from ebpm.loader.libbpf.buffers import PerfBuffer, RingBuffer
from ebpm.loader.tracelog import TraceLog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ebpm.loadtime import LoadTime
    from ebpm.package import PackageConfig

__all__ = ["EVENT_MAP_TYPES", "Decoders", "EventStreams", "declared_decoders",
           "import_readers"]

EVENT_MAP_TYPES = ("ringbuf", "perf_event_array")


def _type_id(type_name: str, btfs: tuple[Btf | None, ...]) -> tuple[Btf, int] | None:
    """The BTF (of the object, else the sidecar) and id of `type_name` (`struct x`, `x`)."""
    bare = type_name.strip()
    for keyword in ("struct", "union", "enum"):  # (no pattern: see ebpm.loader.snapshots)
        if bare.startswith(keyword) and bare[len(keyword):len(keyword) + 1].isspace():
            bare = bare[len(keyword):].lstrip()
            break
    for btf in btfs:
        if btf is None:
            continue
        t = btf.find(bare, Kind.STRUCT, Kind.UNION, Kind.TYPEDEF)
        if t is not None:
            return btf, t.id
    return None


class Decoders:
    """Decoders compiled ahead (`declared_decoders`): `single[type]` decodes one record,
    `batches[(type, perf)]` the records read from a buffer's memory at once."""

    def __init__(self) -> None:
        self.single: dict[str, Decoder] = {}
        self.batches: dict[tuple[str, bool], BatchDecoder] = {}


def declared_decoders(config: PackageConfig | LoadTime, btf: Btf,
                      sidecar: Btf | None) -> Decoders:
    """The decoders of the package's declared event types, compiled before the object is
    loaded (`Session.start` does it while libbpf loads; nothing here needs the kernel): by
    type name, and the batch forms of those read from a declared ring buffer's or perf event
    array's memory, by (type name, perf). A type that cannot be decoded is left out:
    `decoder_for` says why, at open."""
    out = Decoders()
    kinds = {m.name: m.type for m in config.maps}
    hints = config.display.get("fields")
    for e in config.events:
        found = _type_id(e.type, (btf, sidecar)) if e.type else None
        if found is None:
            continue
        try:
            if e.type not in out.single:
                out.single[e.type] = compile_decoder(*found, hints=hints)
            kind = kinds.get(e.map)
            perf = kind == "perf_event_array"
            if out.single[e.type].fields and (kind == "ringbuf" or perf) and _mapped_reads():
                out.batches[(e.type, perf)] = batch_decoder(*found, hints=hints, perf=perf)
        except LoadError:
            continue
    return out


def _mapped_reads() -> bool:
    """Whether buffers are read from their memory here (`EventStreams._map_buffer`)."""
    from ebpm.loader.libbpf import ringbuf

    return ringbuf.supported()


def import_readers(config: PackageConfig | LoadTime, printk: bool = False) -> None:
    """Import what reading this package's streams needs: the memory-mapped readers (`ringbuf`
    for a ring buffer, `perfbuf` for a perf event array, with mmap and select), select's epoll
    for several streams or bpf_printk lines. `Session.start` calls it while libbpf loads (so
    that `ebpm run` pays for these imports beside the kernel's work, not after it). (`open`
    imports them too, for a stream the config did not declare.)"""
    kinds = [m.type for m in config.maps if m.type in EVENT_MAP_TYPES]
    if kinds:
        from ebpm.loader.libbpf import ringbuf  # noqa: F401 - imported now, used at open
    if "perf_event_array" in kinds:
        from ebpm.loader.libbpf import perfbuf  # noqa: F401 - the same
    if len(kinds) > 1 or printk:
        import select  # noqa: F401 - the same


class _EventSource:
    def __init__(self, map_name: str, decoder: Decoder | None) -> None:
        self.map_name = map_name
        self.decoder = decoder


class EventStreams:
    """Every event stream of one loaded object, consumed through one poll."""

    def __init__(
        self, obj: libbpf.BpfObject, config: PackageConfig | LoadTime, btf: Btf,
        sidecar: Btf | None,
        printk: bool = False, decoders: Decoders | None = None,
    ) -> None:
        self.obj = obj
        self._decoders = decoders or Decoders()  # compiled already (`declared_decoders`)
        self.config = config
        self.btf = btf
        self.sidecar = sidecar
        self.events_seen = 0
        self._rings: RingBuffer | None = None
        self._mapped: list[tuple[Any, Any, Callable[[bytes], Any], Callable[[Any], None]]] = []
        self._perfs: list[PerfBuffer] = []
        self._epoll: Any = None
        self._sources: list[_EventSource] = []
        self.printk = printk  # the package calls bpf_printk: its lines are events too
        self.trace: TraceLog | None = None
        self._on_trace: Callable[[dict[str, Any]], None] | None = None

    def _type_id(self, type_name: str) -> tuple[Btf, int] | None:
        return _type_id(type_name, (self.btf, self.sidecar))

    def decoder_for(self, type_name: str) -> Decoder:
        compiled = self._decoders.single.get(type_name)
        if compiled is not None:
            return compiled
        found = self._type_id(type_name)
        if found is None:
            raise LoadError(
                f"events: type {type_name!r} is in neither the object's BTF nor the sidecar",
                hint="rebuild with `ebpm build` (it writes a BTF sidecar for event types)",
            )
        return compile_decoder(*found, hints=self.config.display.get("fields"))

    def event_maps(self) -> list[tuple[str, str]]:
        """(map, C type) of every event stream: declared ones, else ring/perf maps."""
        declared = [(e.map, e.type) for e in self.config.events]
        if declared:
            return declared
        out = []
        for m in self.obj.maps:
            if m.type_name in EVENT_MAP_TYPES:
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
        return (sum(p.lost_total for p in self._perfs)
                + sum(reader.lost_total for reader, *_ in self._mapped))

    def open(self, on_event: Callable[[dict[str, Any]], None], wake: int | None = None) -> int:
        """Start consuming every event stream; returns how many buffers there are. `wake`: an
        fd that ends a `poll`'s wait when it becomes readable (a stop request: ebpm.run.stop);
        it is never read, so that every later poll returns at once too."""
        for map_name, type_name in self.event_maps():
            m = self.obj.map(map_name)
            decoder = self.decoder_for(type_name) if type_name else None
            self._sources.append(_EventSource(map_name, decoder))
            callback = self._callback(decoder, on_event)
            if decoder is not None and self._map_buffer(m.type_name, m.fd, type_name, decoder,
                                                        on_event):
                continue
            if m.type_name == "ringbuf":
                if self._rings is None:
                    self._rings = RingBuffer(m.fd, callback)
                else:
                    self._rings.add(m.fd, callback)
            elif m.type_name == "perf_event_array":
                perf_cb = self._perf_callback(callback)
                self._perfs.append(PerfBuffer(m.fd, perf_cb))
            else:
                raise LoadError(f"events: map {map_name} is a {m.type_name}, not a ring buffer "
                                "or perf event array")
        if self.printk:
            self.trace = TraceLog.open()
            self._on_trace = on_event
        buffers = ([self._rings] if self._rings else []) + list(self._perfs)
        count = len(buffers) + len(self._mapped) + (1 if self.trace else 0)
        if count > 1 or self.trace or (count and wake is not None):
            import select

            self._epoll = select.epoll()
            if wake is not None:
                self._epoll.register(wake, select.EPOLLIN)
            for b in buffers:
                self._epoll.register(b.epoll_fd, select.EPOLLIN)
            for ring, *_ in self._mapped:
                self._epoll.register(ring.fd, select.EPOLLIN)
            if self.trace:
                self._epoll.register(self.trace.fd, select.EPOLLIN)
        return count

    def _map_buffer(self, map_type: str, fd: int, type_name: str, decoder: Decoder,
                    sink: Callable[[dict[str, Any]], None]) -> bool:
        """Read this ring buffer or perf event array from its memory, a batch of records
        decoded at once (where the CPU orders plain loads: x86-64); False to use libbpf's
        callback per record."""
        from ebpm.loader.libbpf import ringbuf

        if map_type not in ("ringbuf", "perf_event_array"):
            return False
        perf = map_type == "perf_event_array"
        batch = self._decoders.batches.get((type_name, perf))
        found = self._type_id(type_name) if batch is None else None
        if batch is None and (found is None or not decoder.fields or not ringbuf.supported()):
            return False
        try:
            if batch is None:
                assert found is not None
                batch = batch_decoder(*found, hints=self.config.display.get("fields"),
                                      perf=perf)
            if perf:
                from ebpm.loader.libbpf.perfbuf import MappedPerf

                reader: Any = MappedPerf(fd)
            else:
                reader = ringbuf.MappedRing(fd)
        except LoadError:
            return False
        self._mapped.append((reader, batch, decoder.decode, sink))
        return True

    def _drain_trace(self) -> int:
        if self.trace is None or self._on_trace is None:
            return 0
        events = self.trace.read()
        self._hand_on(events, self._on_trace)
        return len(events)

    def _drain_mapped(self) -> int:
        n = 0
        for ring, batch, single, sink in self._mapped:
            for _ in range(4):  # a flood still returns to the caller (its stop flag) soon
                events = ring.read(batch, single)
                if not events:
                    break
                n += len(events)
                self._hand_on(events, sink)
        return n

    def _hand_on(self, events: list[Any], sink: Callable[[Any], None]) -> None:
        """Each of `events` to `sink`, counted as seen as it goes (a sink that stops the run
        at its Nth event leaves the count at N; the rest of the batch is dropped)."""
        seen = 0
        try:
            for event in events:
                seen += 1
                sink(event)
        finally:
            self.events_seen += seen

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
        if self._mapped:
            n = self._drain_mapped()
            if n:
                return n + self._consume_others()
        if self._epoll is not None:
            ready = self._epoll.poll(timeout_ms / 1000)
            n = 0
            if ready:
                n += self._drain_trace()
                n += self._drain_mapped()
                if self._rings is not None:
                    n += self._rings.consume()
                for p in self._perfs:
                    n += p.consume()
            return n
        if self._mapped:
            self._mapped[0][0].wait(timeout_ms)
            return self._drain_mapped()
        if self._rings is not None:
            return self._rings.poll(timeout_ms)
        if self._perfs:
            return self._perfs[0].poll(timeout_ms)
        return 0

    def _consume_others(self) -> int:
        n = self._rings.consume() if self._rings is not None else 0
        return n + sum(p.consume() for p in self._perfs) + self._drain_trace()

    def close(self) -> None:
        if self.trace is not None:
            self.trace.close()
            self.trace = None
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._rings is not None:
            self._rings.free()
            self._rings = None
        for ring, *_ in self._mapped:
            ring.close()
        self._mapped = []
        for p in self._perfs:
            p.free()
        self._perfs = []
