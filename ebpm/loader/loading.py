"""Loading an object: open it, choose its programs, size its maps, set .rodata, load -- here or
in a thread of its own while the caller goes on (`Background`).

libbpf's load (vmlinux BTF parsed for CO-RE, the verifier) takes ~15 ms for a tool such as
opensnoop (~1 ms given the CO-RE cache's types, `ebpm.loader.corecache`) and releases the GIL,
so `ebpm run` starts it as soon as the object and its .rodata are known and finishes its own
imports and checks meanwhile. This module imports only libbpf's bindings, so that starting the
load costs no more than that.
"""

from __future__ import annotations

from ebpm import log
from ebpm.errors import LoadError, UsageError
from ebpm.loader import libbpf
from ebpm.meanwhile import meanwhile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ebpm.loadtime import LoadTime
    from ebpm.package import PackageConfig, ProgramSpec

    # the .rodata image to load, or a function of the object's own image (None when the
    # object has none) that returns it: the flags patched in (`ebpm.run.native`)
    Rodata = bytes | Callable[[bytes | None], bytes] | None

__all__ = ["Attempt", "Background", "prepare", "load", "choose_programs", "groups_of",
           "size_unsized_maps",
           "writable_global", "OBJ_NAME_MAX"]

_log = log.get("ebpm.loader")

OBJ_NAME_MAX = 15  # BPF_OBJ_NAME_LEN (16) less the NUL: the kernel's limit on object names
_UNSIZED_DEFAULT = 10240  # entries for a hash map whose size a loader is expected to set
_SIZED_BY_KERNEL = ("ringbuf", "perf_event_array", "user_ringbuf", "inode_storage",
                    "task_storage", "sk_storage", "cgrp_storage", "struct_ops", "arena",
                    "cgroup_storage", "percpu_cgroup_storage")


def size_unsized_maps(obj: libbpf.BpfObject) -> None:
    """Maps declared without max_entries, which a tool's own loader sizes before load
    (cpudist's `start`: the pid count): give them a default instead of failing with EINVAL."""
    for m in obj.maps:
        if not m.internal and m.max_entries == 0 and m.type_name not in _SIZED_BY_KERNEL:
            _log.info("map %s: no max_entries; using %d", m.name, _UNSIZED_DEFAULT)
            m.max_entries = _UNSIZED_DEFAULT


def writable_global(m: libbpf.Map) -> bool:
    """.data and .bss (and their named sections): global variables a program may change."""
    return m.internal and m.type_name == "array" and ".rodata" not in m.name and (
        ".data" in m.name or ".bss" in m.name)


def choose_programs(
    obj: libbpf.BpfObject, specs: dict[str, ProgramSpec],
    groups: dict[str, list[ProgramSpec]], excluded: Iterable[str],
) -> set[str]:
    """Set each program's autoload: the first of its group not `excluded`, else its spec's
    autoload; programs without a spec load as libbpf would. Returns the chosen names."""
    excluded = set(excluded)
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


def groups_of(
    config: PackageConfig | LoadTime,
) -> tuple[dict[str, ProgramSpec], dict[str, list[ProgramSpec]]]:
    """The package's program specs by name, and its alternative groups (in order)."""
    specs = {p.name: p for p in config.programs}
    groups: dict[str, list[ProgramSpec]] = {}
    for p in config.programs:
        if p.group:
            groups.setdefault(p.group, []).append(p)
    return specs, groups


class Attempt:
    """One load of the object: the object (loaded unless `failure`), the programs chosen, the
    images of its writable globals before load, and the kernel's refusal if any."""

    __slots__ = ("obj", "chosen", "images", "failure")

    def __init__(self, obj: libbpf.BpfObject, chosen: set[str], images: dict[str, bytes],
                 failure: LoadError | None = None) -> None:
        self.obj, self.chosen, self.images, self.failure = obj, chosen, images, failure


def prepare(
    obj_bytes: bytes, config: PackageConfig | LoadTime, *, rodata: Rodata = None,
    excluded: Iterable[str] = (), attach: Iterable[str] = (), core_btf: str | None = None,
) -> Attempt:
    """Open `obj_bytes`, choose its programs (`excluded`: fallen back from), size unsized maps,
    set .rodata (`rodata`: the image, or a function of the object's own, as libbpf read it
    from the ELF): ready to load (`attach`: programs named by --attach, which must exist;
    `core_btf`: the kernel's types its CO-RE relocations use, `ebpm.loader.corecache`)."""
    specs, groups = groups_of(config)
    obj = libbpf.BpfObject.open_memory(obj_bytes, name=config.name[:OBJ_NAME_MAX],
                                       btf_custom_path=core_btf)
    try:
        unknown = sorted(set(attach) - set(specs) - {""})
        names = {p.name for p in obj.programs}
        if unknown and not set(unknown) <= names:
            missing = sorted(set(unknown) - names)
            raise UsageError(f"--attach {missing[0]}: no program of that name",
                             hint="programs: " + ", ".join(sorted(names)))
        chosen = choose_programs(obj, specs, groups, excluded)
        size_unsized_maps(obj)
        if callable(rodata):
            found = obj.find_map(".rodata")
            image = rodata(None if found is None else found.initial_value())
            obj.map(".rodata").set_initial_value(image)
        elif rodata is not None:
            obj.map(".rodata").set_initial_value(rodata)
        images = {m.name: m.initial_value() for m in obj.maps if writable_global(m)}
    except BaseException:
        obj.close()
        raise
    return Attempt(obj, chosen, images)


def load(
    obj_bytes: bytes, config: PackageConfig | LoadTime, *, rodata: Rodata = None,
    excluded: Iterable[str] = (), attach: Iterable[str] = (), core_btf: str | None = None,
) -> Attempt:
    """`prepare`, then load. A refusal by the kernel is returned in `Attempt.failure` (the
    object still open, for the caller's fallback); anything else raises, the object closed.
    A refused load with `core_btf` is done again without it (see `_without`)."""
    attempt = prepare(obj_bytes, config, rodata=rodata, excluded=excluded, attach=attach,
                      core_btf=core_btf)
    try:
        attempt.obj.load()
    except LoadError as err:
        attempt.failure = err
    except BaseException:
        attempt.obj.close()
        raise
    if attempt.failure is not None and core_btf is not None:
        return _without(attempt, core_btf, lambda: load(
            obj_bytes, config, rodata=rodata, excluded=excluded, attach=attach))
    return attempt


def _without(attempt: Attempt, core_btf: str, again: Callable[[], Attempt]) -> Attempt:
    """A load refused with the cached `core_btf`, done again without it (`again`); the file is
    removed when that load succeeds (it was the cause), kept when it is refused too."""
    from ebpm.loader import corecache

    _log.info("load with the CO-RE cache's %s refused (%s); again with the kernel's BTF",
              core_btf, attempt.failure)
    attempt.obj.close()
    retried = again()
    if retried.failure is None:
        corecache.forget(core_btf)
    return retried


class Background:
    """`load(...)` with the load itself in a thread: the object is opened and configured
    here (many short libbpf calls, each of which would wait for the GIL in a thread), then
    one call, which releases the GIL for its ~10 ms, runs in a thread while the caller goes
    on. Unless libbpf's log is wanted (-vv, or a package with alternatives: its fallback
    reads the refused program's name there), the thread's load is quiet (`libbpf.quiet`: no
    log callback into Python, each of which would wait for the GIL the caller holds); a
    refused quiet load is done again in the caller's thread by `take()`, for the log that
    explains it; so is the open before it (its ~70 log lines for opensnoop would each call
    into Python: ~0.15 ms), and a failed quiet open is done again with the log, for the
    error. `take()` waits for it (raising what it raised); `discard()` waits and closes the
    object. Every Background must end in one of the two, and nothing else may use libbpf
    meanwhile."""

    def __init__(self, obj_bytes: bytes, config: PackageConfig | LoadTime, *,
                 rodata: Rodata = None,
                 attach: Iterable[str] = (), core_btf: str | None = None) -> None:
        self._again = (obj_bytes, config, rodata, tuple(attach))
        self._core_btf = core_btf
        # quiet unless the log is wanted: -vv, or a package with alternatives, whose
        # fallback reads the refused program's name in the log (no second load for it)
        self._quiet = not libbpf.log_read() and not any(p.group for p in config.programs)
        # silenced here, not in the thread: the thread's one call into libbpf is the load
        # (each call from it returns through the GIL, which this thread holds meanwhile)
        self._silenced: libbpf.quiet | None = libbpf.quiet() if self._quiet else None
        if self._silenced is not None:
            self._silenced.__enter__()
        try:
            try:
                attempt = prepare(obj_bytes, config, rodata=rodata, attach=attach,
                                  core_btf=core_btf)
            except LoadError:
                if self._silenced is None:
                    raise
                self._unsilence()  # again, with libbpf's log for the error
                attempt = prepare(obj_bytes, config, rodata=rodata, attach=attach,
                                  core_btf=core_btf)
                self._quiet = False
        except BaseException:
            self._unsilence()
            raise
        self._attempt: Attempt | None = attempt
        try:
            self._loaded = meanwhile(lambda: self._load(attempt))
        except BaseException:
            self._attempt = None
            self._unsilence()
            attempt.obj.close()
            raise
        if self._silenced is not None:
            libbpf.log_callback()  # made while libbpf loads, for the log after the load

    @staticmethod
    def _load(attempt: Attempt) -> None:
        try:
            attempt.obj.load()
        except LoadError as err:
            attempt.failure = err

    def _unsilence(self) -> None:
        silenced, self._silenced = self._silenced, None
        if silenced is not None:
            silenced.__exit__()

    def _wait(self) -> None:
        """Wait for the thread's load; then libbpf's log goes where it went before."""
        try:
            self._loaded()
        finally:
            self._unsilence()

    def take(self) -> Attempt:
        attempt, self._attempt = self._attempt, None
        assert attempt is not None, "Background: taken twice"
        try:
            self._wait()
        except BaseException:
            attempt.obj.close()
            raise
        obj_bytes, config, rodata, attach = self._again
        if attempt.failure is not None and self._core_btf is not None:
            return _without(attempt, self._core_btf, lambda: load(
                obj_bytes, config, rodata=rodata, attach=attach))  # (with libbpf's log)
        if attempt.failure is not None and self._quiet:  # again, with libbpf's log
            attempt.obj.close()
            return load(obj_bytes, config, rodata=rodata, attach=attach)
        return attempt

    def discard(self) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is None:
            return
        try:
            self._wait()
        except BaseException:  # nothing of it is kept
            pass
        finally:
            attempt.obj.close()
