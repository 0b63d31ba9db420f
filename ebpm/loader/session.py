"""A loaded package: open, configure, load (with fallback to alternatives), attach, poll, close.

`Session.start(obj, config, ...)` makes every kernel-dependent choice: which program of each
alternative group (`ProgramSpec.group`) loads and attaches here, which fall back and why
(explicit targets: `ebpm.loader.attach`). The session then decodes events from ring/perf
buffers (`ebpm.loader.events`) and snapshots the maps that carry results (counters, log2
histograms: `ebpm.loader.snapshots`). `close()` (or leaving the `with`) destroys every link
and fd.
"""

from __future__ import annotations

import errno

from ebpm import log
from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.attach import attach_to
from ebpm.loader.btf import Btf
from ebpm.loader.decode import Decoder
from ebpm.loader.events import Decoders, EventStreams, declared_decoders, import_readers
from ebpm.loader.loading import Background, groups_of, load, writable_global
from ebpm.loader.snapshots import MapSnapshot, ResultMaps
from ebpm.loader.tracelog import uses_printk
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from ebpm.loader.loading import Rodata
    from ebpm.loadtime import LoadTime
    from ebpm.package import PackageConfig, ProgramSpec

_log = log.get("ebpm.loader")

__all__ = ["Dropped", "Session", "verifier_tail"]

_FAILED_PROG = r"prog '([^']+)': (?:failed|BPF program load failed|relo #)"
_TAIL_LINES = 20


@record
class Dropped:
    """A program that could not load or attach here; `replaced_by` is the alternative used."""

    program: str
    section: str
    reason: str
    replaced_by: str = ""


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


_TRACEPOINT_SECTIONS = ("tracepoint/", "tp/")
ITERATOR_SECTIONS = ("iter/", "iter.s/")


# map kinds `Session.reattach` empties (hash kinds and tries: every key deleted; arrays:
# zeroed; ring buffers: drained; perf buffers: made anew by each reader)
_RESETTABLE = frozenset({"hash", "lru_hash", "percpu_hash", "lru_percpu_hash", "lpm_trie",
                         "stack_trace", "array", "percpu_array", "ringbuf", "perf_event_array"})


def _sidecar(data: bytes, name: str) -> Btf:
    """The package's BTF sidecar, parsed; one that is damaged says so, naming it, with a
    hint (was "BTF: BTF too short")."""
    where = f"{name}'s BTF sidecar ({name}.btf)"
    try:
        return Btf.parse(data, where=where)
    except LoadError as err:
        raise LoadError(f"{where} is damaged: {err.message.removeprefix(where + ': ')}",
                        hint="build the package again (`ebpm build`), or pull it again") from err


class Session:
    """A package loaded and attached in the kernel; use as a context manager."""

    def __init__(
        self, obj: libbpf.BpfObject, config: PackageConfig | LoadTime, btf: Btf,
        sidecar: Btf | None,
        dropped: list[Dropped], attached: list[str], unit: str = "", printk: bool = False,
        decoders: Decoders | None = None,
    ) -> None:
        self.obj = obj
        self.config = config
        self.btf = btf
        self.sidecar = sidecar
        self.dropped = tuple(dropped)
        self.attached = tuple(attached)
        self.iterators: tuple[tuple[str, libbpf.Link], ...] = ()  # (program, link): `iterate`
        self.unit = unit
        self.printk = printk
        self._decoders = decoders  # the event types' decoders, compiled while it loaded
        self.events = EventStreams(obj, config, btf, sidecar, printk=printk, decoders=decoders)
        self.results = ResultMaps(obj, btf, [m for m, _ in self.events.event_maps()],
                                  results=tuple(config.display.get("results", ())), unit=unit)
        # how to attach again after `detach` (set by `start`): the programs chosen at load,
        # explicit targets, and the global variables' images before load
        self._plan: tuple[set[str], dict[str, ProgramSpec], dict[str, list[ProgramSpec]],
                          dict[str, Dropped], dict[str, str]] | None = None
        self._globals: dict[str, bytes] = {}

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, obj_bytes: bytes, config: PackageConfig | LoadTime, *,
        sidecar_btf: bytes | None = None,
        rodata: Rodata = None, attach: Mapping[str, str] | None = None, unit: str = "",
        background: Background | None = None, core_btf: str | None = None,
    ) -> Session:
        """Open, configure, load and attach, falling back to alternatives where one fails.
        `background`: the first load, already under way (`ebpm.loader.loading.Background`,
        started with the same object, config, rodata and attach); taken here, even when
        this raises. `core_btf`: the kernel's types the object's CO-RE relocations use
        (`ebpm.loader.corecache`), for a load here."""
        try:
            btf = Btf.parse(obj_bytes)
            sidecar = _sidecar(sidecar_btf, config.name) if sidecar_btf else None
            # (while libbpf loads, when `background` runs: compiling needs no kernel)
            decoders = declared_decoders(config, btf, sidecar)
            printk = uses_printk(obj_bytes)
            import_readers(config, printk)
        except BaseException:
            if background is not None:
                background.discard()
            raise
        attach = dict(attach or {})
        excluded: dict[str, Dropped] = {}
        specs, groups = groups_of(config)
        while True:
            if background is not None:
                attempt, background = background.take(), None
            else:
                attempt = load(obj_bytes, config, rodata=rodata, excluded=excluded,
                               attach=attach, core_btf=core_btf)
            if attempt.failure is not None:
                core_btf = None  # (the fallback's loads read the kernel's BTF)
            obj, chosen = attempt.obj, attempt.chosen
            try:
                if attempt.failure is not None:
                    err = attempt.failure
                    import re  # (a refused load only: no `ebpm run` imports it otherwise)

                    failed = re.search(_FAILED_PROG, err.verifier_log)
                    name = failed.group(1) if failed else ""
                    if cls._can_fall_back(name, specs, groups, excluded):
                        excluded[name] = Dropped(name, specs[name].section,
                                                 f"load failed: {err.message.split(': ')[-1]}")
                        obj.close()
                        continue
                    raise cls._load_error(config.name, name, err) from err
                attached, iterators, retry = cls._attach_all(obj, chosen, specs, groups,
                                                             excluded, attach)
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
            session = cls(obj, config, btf, sidecar, dropped, attached, unit, printk=printk,
                          decoders=decoders)
            session._plan = (chosen, specs, groups, dict(excluded), attach)
            session.iterators = iterators
            session._globals = attempt.images
            return session

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
        what = f"program {program}" if program else "object"
        cause = err.message.split(": ")[-1]
        msg = f"load {package}: {what} rejected by the kernel: {cause}"
        hint = "run with -vv for libbpf's full log"
        if err.errno == errno.EPERM:
            # the cause is known: no verifier spoke, and libbpf's log holds only its CO-RE
            # relocations and its advice to raise `ulimit -l` (wrong here: it says so for
            # any EPERM as root); the log stays for -vv
            hint = "this kernel refuses this program type (EPERM); " + hint
        else:
            tail = verifier_tail(err.verifier_log)
            if tail:
                msg += "\n" + "\n".join("  " + line for line in tail.splitlines())
        return LoadError(msg, hint=hint, verifier_log=err.verifier_log, errno=err.errno)

    @staticmethod
    def _attach_all(
        obj: libbpf.BpfObject, chosen: set[str], specs: dict[str, ProgramSpec],
        groups: dict[str, list[ProgramSpec]], excluded: dict[str, Dropped],
        explicit: dict[str, str],
    ) -> tuple[list[str], tuple[tuple[str, libbpf.Link], ...], bool]:
        """Attach the `chosen` programs: (what is attached, "PROG -> HOOK"; the iterator
        programs' links; whether to load again without a program that could not attach)."""
        attached = []
        iterators = []
        for prog in obj.programs:
            if prog.name not in chosen:
                continue
            try:
                target = explicit.get(prog.name)
                link = attach_to(prog, target) if target else prog.attach()
            except LoadError as err:
                if Session._can_fall_back(prog.name, specs, groups, excluded):
                    reason = f"attach failed: {err.message.split(': ')[-1]}"
                    excluded[prog.name] = Dropped(prog.name, prog.section, reason)
                    obj.close()
                    return [], (), True
                if (err.errno == errno.ENOENT and not explicit.get(prog.name)
                        and prog.section.startswith(_TRACEPOINT_SECTIONS)):
                    # a tracepoint this kernel does not have (sync_file_range2 outside arm):
                    # the program stays loaded but unattached, as libbpf-tools do
                    excluded[prog.name] = Dropped(prog.name, prog.section,
                                                  "no such tracepoint on this kernel")
                    continue
                hint = None
                if prog.section.startswith("perf_event") and not explicit.get(prog.name):
                    # (libbpf attaches these to a perf event fd its caller opened: a CPU
                    # clock, a hardware counter... which ebpm has no option to ask for)
                    raise LoadError(f"attach {prog.name} ({prog.section}): perf_event "
                                    "programs are not supported (yet): ebpm opens no perf "
                                    "event to attach them to", hint="run it with its own "
                                    "userspace (libbpf-bootstrap's profile opens one per "
                                    "CPU)", errno=err.errno) from err
                if err.errno == errno.EOPNOTSUPP:  # the section names no target
                    hint = (f"give a target: --attach {prog.name}=uprobe:BINARY:FUNC "
                            "(or tracepoint:CAT:NAME, xdp:IFNAME, tc:IFNAME)")
                elif "kprobe" in prog.section:
                    hint = "this kernel may lack kprobes (CONFIG_KPROBES)"
                raise LoadError(f"attach {prog.name} ({prog.section}): {err.message}",
                                hint=hint, verifier_log=err.verifier_log,
                                errno=err.errno) from err
            attached.append(f"{prog.name} -> {link.description.split(' -> ')[-1]}")
            if prog.section.startswith(ITERATOR_SECTIONS):
                iterators.append((prog.name, link))
        if not attached and chosen:
            missing = ", ".join(sorted(excluded))
            raise LoadError(f"attach: none of the programs has its hook here ({missing})",
                            hint="the tracepoints they name do not exist on this kernel")
        return attached, tuple(iterators), False

    # -- events (see ebpm.loader.events) ------------------------------------------------------

    def decoder_for(self, type_name: str) -> Decoder:
        return self.events.decoder_for(type_name)

    def event_maps(self) -> list[tuple[str, str]]:
        """(map, C type) of every event stream: declared ones, else ring/perf maps."""
        return self.events.event_maps()

    @property
    def fields(self) -> tuple[str, ...]:
        """Columns of the first event stream (empty when undecodable)."""
        return self.events.fields

    @property
    def widths(self) -> tuple[int, ...]:
        """Per column of `fields`: the widest value its type can print (0: unknown)."""
        return self.events.widths

    @property
    def events_seen(self) -> int:
        return self.events.events_seen

    @property
    def lost(self) -> int:
        return self.events.lost

    def open_events(self, on_event: Callable[[dict[str, Any]], None],
                    wake: int | None = None) -> int:
        """Start consuming every event stream; returns how many there are (`wake`: an fd that
        ends a poll's wait when readable, see `EventStreams.open`)."""
        return self.events.open(on_event, wake)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms and hand every available event to the callback."""
        return self.events.poll(timeout_ms)

    # -- iterators ----------------------------------------------------------------------------

    def iterate(self, take: Callable[[str, bytes], None]) -> tuple[tuple[str, int], ...]:
        """Run each iterator program once, to its end (as `bpftool iter pin` and `cat`):
        `take(program, chunk)` gets what it wrote; returns (program, bytes written) of each."""
        from ebpm.loader.libbpf.links import iterate

        def taker(name: str) -> Callable[[bytes], None]:
            return lambda chunk: take(name, chunk)

        return tuple((name, iterate(link, taker(name))) for name, link in self.iterators)

    # -- result maps (see ebpm.loader.snapshots) -------------------------------------------------

    @property
    def result_maps(self) -> tuple[str, ...]:
        return self.results.names

    def snapshot_maps(self, *, clear: bool = False) -> list[MapSnapshot]:
        """Decoded contents of the result maps (per-CPU values summed); `clear` empties them
        afterwards, so that the next snapshot holds one interval's counts."""
        return self.results.snapshot(clear=clear)

    # -- kept loaded between runs (the agent's warm cache) ----------------------------------------

    @property
    def warmable(self) -> bool:
        """Whether `detach` then `reattach` gives a run as fresh as a new load: every map is
        of a kind `reattach` can empty (no program arrays, map-in-maps, socket maps...)."""
        return self._plan is not None and all(
            m.type_name in _RESETTABLE or writable_global(m) or m.internal
            for m in self.obj.maps)

    def detach(self) -> None:
        """Stop reading events and destroy every link; programs and maps stay loaded (verified)
        for `reattach`, or until `close`."""
        self.events.close()
        self.obj.detach_all()
        self.attached = ()
        self.iterators = ()

    def reattach(self) -> None:
        """Attach a detached session again as if newly loaded: its maps emptied (entries,
        counters, unread records) and its global variables back to their values at load."""
        if self._plan is None:
            raise LoadError(f"{self.config.name}: this session cannot be attached again")
        self._reset_maps()
        chosen, specs, groups, excluded, explicit = self._plan
        attached, iterators, retry = self._attach_all(self.obj, chosen, specs, groups,
                                                      dict(excluded), explicit)
        if retry:  # a program that attached at load no longer does (the object is closed)
            raise LoadError(f"{self.config.name}: attach again: a program's hook is gone")
        self.attached = tuple(attached)
        self.iterators = iterators
        self.events = EventStreams(self.obj, self.config, self.btf, self.sidecar,
                                   printk=self.printk, decoders=self._decoders)
        self.results = ResultMaps(self.obj, self.btf,
                                  [m for m, _ in self.events.event_maps()],
                                  results=tuple(self.config.display.get("results", ())),
                                  unit=self.unit)

    def _reset_maps(self) -> None:
        for m in self.obj.maps:
            kind = m.type_name
            if m.name in self._globals:
                m.update(bytes(4), self._globals[m.name])
            elif m.internal or kind == "perf_event_array":
                continue  # read-only data; perf buffers belong to their reader
            elif kind == "ringbuf":
                with libbpf.RingBuffer(m.fd, lambda data: None) as ring:
                    while ring.consume():
                        pass
            elif kind in ("array", "percpu_array"):
                zero = bytes(m.cpu_stride * libbpf.num_possible_cpus() if m.per_cpu
                             else m.value_size)
                for i in range(m.max_entries):
                    m.update(i.to_bytes(4, "little"), zero)
            else:
                for key in list(m.keys()):
                    m.delete(key)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        self.events.close()
        for _, link in self.iterators:  # (the object's own, or opened from pins: adopted)
            link.destroy()
        self.iterators = ()
        self.obj.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

